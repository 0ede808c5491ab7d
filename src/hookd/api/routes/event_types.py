"""/v1/event-types: a tenant's catalogue of event types, with payload schemas and examples.

Names are unique per tenant, so the item routes address a type by name in the caller's tenant;
an admin key picks the tenant with `?tenant_id=` (default `default`). DELETE archives (soft):
the type stays readable and publishing to it is refused; PATCH `{"archived": false}` restores it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute

router = APIRouter(prefix="/v1/event-types", tags=["event types"], route_class=StrictJSONRoute)

Name = Annotated[str, Path(description="The event type's name, e.g. `order.filled`.")]


@router.post(
    "",
    status_code=201,
    summary="Declare an event type",
    responses=problems.responses(400, 401, 404, 409, 413, 422),
)
async def create_event_type(
    body: schemas.EventTypeCreate, key: Caller, engine: EngineDep
) -> schemas.EventType:
    event_type = await engine.create_event_type(
        auth.target_tenant(key, body.tenant_id),
        name=body.name,
        description=body.description,
        schema=body.payload_schema,
        example=body.example,
        archived=body.archived,
    )
    return serialize.event_type(event_type)


@router.get("", summary="List event types", responses=problems.responses(401, 404, 422))
async def list_event_types(
    key: Caller,
    engine: EngineDep,
    include_archived: Annotated[
        bool, Query(description="Include archived types (default: only live ones).")
    ] = False,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.EventTypePage:
    page = await engine.list_event_types(
        auth.list_scope(key, tenant_id),
        include_archived=include_archived,
        limit=limit,
        cursor=cursor,
    )
    return serialize.event_type_page(page)


@router.get("/{name}", summary="Get an event type", responses=problems.responses(401, 404, 422))
async def get_event_type(
    name: Name, key: Caller, engine: EngineDep, tenant_id: TenantQuery = None
) -> schemas.EventType:
    event_type = await engine.get_event_type(auth.target_tenant(key, tenant_id), name)
    return serialize.event_type(event_type)


@router.patch(
    "/{name}",
    summary="Change an event type",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def update_event_type(
    name: Name,
    body: schemas.EventTypeUpdate,
    key: Caller,
    engine: EngineDep,
    tenant_id: TenantQuery = None,
) -> schemas.EventType:
    event_type = await engine.update_event_type(
        auth.target_tenant(key, tenant_id), name, **body.changes()
    )
    return serialize.event_type(event_type)


@router.delete(
    "/{name}",
    summary="Archive an event type (idempotent; it stays readable)",
    responses=problems.responses(401, 404, 422),
)
async def archive_event_type(
    name: Name, key: Caller, engine: EngineDep, tenant_id: TenantQuery = None
) -> schemas.EventType:
    event_type = await engine.archive_event_type(auth.target_tenant(key, tenant_id), name)
    return serialize.event_type(event_type)
