"""/v1/keys: API keys. Create (the key is shown once), list (prefixes, never hashes), revoke.

An admin key manages every key. A tenant key manages its own tenant's keys: it can create more
keys for its tenant, never an admin key (403) and never one for another tenant (404, as for
anything of another tenant's).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.domain import errors

router = APIRouter(prefix="/v1/keys", tags=["API keys"], route_class=StrictJSONRoute)


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    response_description="The key's record and the key itself (shown only here).",
    responses=problems.responses(400, 401, 403, 404, 413, 422),
)
async def create_key(
    body: schemas.ApiKeyCreate, key: Caller, engine: EngineDep
) -> schemas.ApiKeyCreated:
    tenant_id: str | None
    if "tenant_id" in body.model_fields_set and body.tenant_id is None:
        if key.tenant_id is not None:
            raise errors.Forbidden("a tenant key cannot create admin keys")
        tenant_id = None  # an admin key
    else:
        tenant_id = auth.target_tenant(key, body.tenant_id)
    record, secret = await engine.create_api_key(tenant_id, name=body.name)
    return serialize.api_key_created(record, secret)


@router.get("", summary="List API keys", responses=problems.responses(401, 404, 422))
async def list_keys(
    key: Caller,
    engine: EngineDep,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.ApiKeyPage:
    page = await engine.list_api_keys(auth.list_scope(key, tenant_id), limit=limit, cursor=cursor)
    return serialize.api_key_page(page)


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key (requests with it are refused from now on)",
    responses=problems.responses(401, 404, 409),
)
async def revoke_key(key_id: str, key: Caller, engine: EngineDep) -> Response:
    await engine.revoke_api_key(auth.scope(key), key_id)
    return Response(status_code=204)
