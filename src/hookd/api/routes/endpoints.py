"""/v1/endpoints: create, list, read, change and delete delivery destinations."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller
from hookd.api.deps import Cursor, EngineDep, Limit

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])


@router.post(
    "",
    status_code=201,
    summary="Create an endpoint",
    response_description="The endpoint, with its signing secret (shown only here).",
    responses=problems.responses(400, 401, 413, 422),
)
async def create_endpoint(
    body: schemas.EndpointCreate, key: Caller, engine: EngineDep
) -> schemas.EndpointCreated:
    endpoint, secret = await engine.create_endpoint(
        auth.home_tenant(key),
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        headers=body.headers,
        timeout=body.timeout,
        retry_policy=body.retry_policy,
        max_attempts=body.max_attempts,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
    )
    return serialize.endpoint_created(endpoint, secret)


@router.get("", summary="List endpoints", responses=problems.responses(401, 422))
async def list_endpoints(
    key: Caller, engine: EngineDep, limit: Limit = 50, cursor: Cursor = None
) -> schemas.EndpointPage:
    page = await engine.list_endpoints(auth.scope(key), limit=limit, cursor=cursor)
    return serialize.endpoint_page(page)


@router.get("/{endpoint_id}", summary="Get an endpoint", responses=problems.responses(401, 404))
async def get_endpoint(endpoint_id: str, key: Caller, engine: EngineDep) -> schemas.Endpoint:
    return serialize.endpoint(await engine.get_endpoint(auth.scope(key), endpoint_id))


@router.patch(
    "/{endpoint_id}",
    summary="Change an endpoint",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def update_endpoint(
    endpoint_id: str, body: schemas.EndpointUpdate, key: Caller, engine: EngineDep
) -> schemas.Endpoint:
    endpoint = await engine.update_endpoint(auth.scope(key), endpoint_id, **body.changes())
    return serialize.endpoint(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an endpoint, with its deliveries and their attempts",
    responses=problems.responses(401, 404),
)
async def delete_endpoint(endpoint_id: str, key: Caller, engine: EngineDep) -> Response:
    await engine.delete_endpoint(auth.scope(key), endpoint_id)
    return Response(status_code=204)
