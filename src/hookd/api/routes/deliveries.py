"""/v1/deliveries: the delivery log, each delivery's attempts, and retrying one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookd.api import auth, params, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.api.schemas import Timestamp
from hookd.store.port import DeliveryFilter

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], route_class=StrictJSONRoute)


@router.get("", summary="List deliveries", responses=problems.responses(401, 404, 422))
async def list_deliveries(
    key: Caller,
    engine: EngineDep,
    status: Annotated[
        list[str] | None,
        Query(
            description="Only these statuses: repeat the parameter or separate with commas "
            "(pending, sending, delivered, failed, dead, parked)."
        ),
    ] = None,
    endpoint_id: Annotated[str | None, Query(description="Only this endpoint's.")] = None,
    event_id: Annotated[str | None, Query(description="Only this event's.")] = None,
    event_type: Annotated[str | None, Query(description="Only this event type's.")] = None,
    created_after: Annotated[
        Timestamp | None,
        Query(description="Only deliveries created at or after this (RFC 3339)."),
    ] = None,
    created_before: Annotated[
        Timestamp | None, Query(description="Only deliveries created before this (RFC 3339).")
    ] = None,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.DeliveryPage:
    filter = DeliveryFilter(
        statuses=params.parse_statuses(status or ()),
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        created_after=None if created_after is None else created_after.timestamp(),
        created_before=None if created_before is None else created_before.timestamp(),
    )
    scope = auth.list_scope(key, tenant_id)
    page = await engine.list_deliveries(scope, filter, limit=limit, cursor=cursor)
    return serialize.delivery_page(page)


@router.get(
    "/{delivery_id}",
    summary="Get a delivery with its attempts",
    responses=problems.responses(401, 404),
)
async def get_delivery(delivery_id: str, key: Caller, engine: EngineDep) -> schemas.DeliveryDetail:
    delivery, attempts = await engine.get_delivery(auth.scope(key), delivery_id)
    return serialize.delivery_detail(delivery, attempts)


@router.post(
    "/{delivery_id}/retry",
    status_code=202,
    summary="Send a delivery again now, with a fresh attempt budget",
    responses=problems.responses(401, 404, 409),
)
async def retry_delivery(delivery_id: str, key: Caller, engine: EngineDep) -> schemas.Delivery:
    return serialize.delivery(await engine.retry_delivery(auth.scope(key), delivery_id))
