"""/v1/dead-letters: deliveries that ended without success (failed or dead).

They are kept until purged, and can be replayed singly or in bulk.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookd.api import auth, params, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.domain.models import DEAD_LETTER_STATUSES
from hookd.store.port import DeliveryFilter

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"], route_class=StrictJSONRoute)

EndpointFilter = Annotated[str | None, Query(description="Only this endpoint's.")]


@router.get("", summary="List dead letters", responses=problems.responses(401, 404, 422))
async def list_dead_letters(
    key: Caller,
    engine: EngineDep,
    endpoint_id: EndpointFilter = None,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.DeliveryPage:
    filter = DeliveryFilter(statuses=DEAD_LETTER_STATUSES, endpoint_id=endpoint_id)
    scope = auth.list_scope(key, tenant_id)
    page = await engine.list_deliveries(scope, filter, limit=limit, cursor=cursor)
    return serialize.delivery_page(page)


@router.post(
    "/replay",
    status_code=202,
    summary="Replay dead letters (all of them when the body is empty)",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def replay_dead_letters(
    key: Caller, engine: EngineDep, body: schemas.ReplayRequest | None = None
) -> schemas.Replayed:
    body = body or schemas.ReplayRequest()
    count = await engine.replay_dead_letters(
        auth.list_scope(key, body.tenant_id),
        delivery_ids=body.delivery_ids,
        endpoint_id=body.endpoint_id,
        event_type=body.event_type,
        since=None if body.since is None else body.since.timestamp(),
        limit=body.limit,
    )
    return schemas.Replayed(replayed=count)


@router.delete("", summary="Purge old dead letters", responses=problems.responses(401, 404, 422))
async def purge_dead_letters(
    key: Caller,
    engine: EngineDep,
    older_than: Annotated[
        str,
        Query(
            max_length=32,
            description="Age: `30d`, `12h`, `90m`, `45s`, or plain seconds. Dead letters "
            "that ended longer ago than this are deleted.",
        ),
    ],
    endpoint_id: EndpointFilter = None,
    tenant_id: TenantQuery = None,
) -> schemas.Purged:
    count = await engine.purge_dead_letters(
        auth.list_scope(key, tenant_id),
        older_than=params.parse_duration(older_than),
        endpoint_id=endpoint_id,
    )
    return schemas.Purged(purged=count)
