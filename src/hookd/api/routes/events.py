"""/v1/events: publish an event or a batch, list events, read one back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.api.schemas import Timestamp
from hookd.domain import errors
from hookd.engine import EventInput
from hookd.store.port import EventFilter

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=StrictJSONRoute)

#: The batch route, which takes a larger body than the others (`HOOKD_MAX_BATCH_BYTES`).
BATCH_PATH = "/v1/events/batch"


@router.post(
    "",
    status_code=202,
    summary="Publish an event",
    response_description="Accepted: the event and its deliveries are stored.",
    responses={
        200: {
            "model": schemas.EventAccepted,
            "description": "A repeat of an idempotency key: the first event, `duplicate` true.",
        },
        **problems.responses(400, 401, 404, 413, 422),
    },
)
async def publish(
    body: schemas.EventCreate,
    key: Caller,
    engine: EngineDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Same as the body's `idempotency_key` (when both are given, they must "
            "match).",
        ),
    ] = None,
) -> schemas.EventAccepted:
    if idempotency_key is not None and body.idempotency_key not in (None, idempotency_key):
        raise errors.ValidationError(
            "invalid event",
            [errors.Problem("idempotency_key", "differs from the Idempotency-Key header")],
        )
    result = await engine.publish(
        auth.target_tenant(key, body.tenant_id),
        body.type,
        body.payload,
        idempotency_key=body.idempotency_key if idempotency_key is None else idempotency_key,
        occurred_at=None if body.occurred_at is None else body.occurred_at.timestamp(),
        priority=body.priority,
    )
    if result.duplicate:
        response.status_code = 200
    return serialize.event_accepted(result)


@router.post(
    "/batch",
    status_code=202,
    summary="Publish up to 1000 events, all or nothing",
    response_description="Accepted: every event and its deliveries are stored (one result per "
    "event, in order; a repeated idempotency key shows `duplicate` true).",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def publish_batch(
    body: schemas.EventBatch, key: Caller, engine: EngineDep
) -> schemas.EventBatchAccepted:
    results = await engine.publish_batch(
        auth.target_tenant(key, body.tenant_id),
        [
            EventInput(
                type=item.type,
                payload=item.payload,
                idempotency_key=item.idempotency_key,
                occurred_at=None if item.occurred_at is None else item.occurred_at.timestamp(),
                priority=item.priority,
            )
            for item in body.events
        ],
    )
    return serialize.event_batch_accepted(results)


@router.get("", summary="List events", responses=problems.responses(401, 404, 422))
async def list_events(
    key: Caller,
    engine: EngineDep,
    type: Annotated[str | None, Query(description="Only this event type.")] = None,
    created_after: Annotated[
        Timestamp | None, Query(description="Only events created at or after this (RFC 3339).")
    ] = None,
    created_before: Annotated[
        Timestamp | None, Query(description="Only events created before this (RFC 3339).")
    ] = None,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.EventPage:
    filter = EventFilter(
        type=type,
        created_after=None if created_after is None else created_after.timestamp(),
        created_before=None if created_before is None else created_before.timestamp(),
    )
    page = await engine.list_events(
        auth.list_scope(key, tenant_id), filter, limit=limit, cursor=cursor
    )
    return serialize.event_page(page)


@router.get("/{event_id}", summary="Get an event", responses=problems.responses(401, 404))
async def get_event(event_id: str, key: Caller, engine: EngineDep) -> schemas.Event:
    return serialize.event(await engine.get_event(auth.scope(key), event_id))
