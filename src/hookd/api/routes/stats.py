"""/v1/stats and /v1/endpoints/{id}/stats: delivery counts, success rate and latency over a
window (definitions in hookd.stats). A tenant key sees its own tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookd import stats
from hookd.api import auth, params, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import EngineDep
from hookd.api.jsonbody import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)

Window = Annotated[
    str,
    Query(
        max_length=32,
        description="How far back: `24h`, `7d`, `90m`, `1h30m`, or plain seconds; at most 90 "
        "days. Deliveries created and attempts started since then count.",
    ),
]


@router.get(
    "/v1/stats",
    tags=["stats"],
    summary="Delivery stats: totals, success rate, latency, busiest event types and endpoints",
    responses=problems.responses(401, 404, 422),
)
async def get_stats(
    key: Caller,
    engine: EngineDep,
    window: Window = "24h",
    top: Annotated[
        int, Query(ge=1, le=stats.MAX_TOP, description="How many event types and endpoints.")
    ] = 10,
    tenant_id: TenantQuery = None,
) -> schemas.Stats:
    record = await engine.get_stats(
        auth.list_scope(key, tenant_id),
        window=params.parse_duration(window, path="window"),
        top=top,
    )
    return serialize.all_stats(record)


@router.get(
    "/v1/endpoints/{endpoint_id}/stats",
    tags=["endpoints"],
    summary="An endpoint's delivery stats: counts by status, success rate, latency percentiles",
    responses=problems.responses(401, 404, 422),
)
async def get_endpoint_stats(
    endpoint_id: str, key: Caller, engine: EngineDep, window: Window = "24h"
) -> schemas.EndpointStats:
    record = await engine.get_endpoint_stats(
        auth.scope(key), endpoint_id, window=params.parse_duration(window, path="window")
    )
    return serialize.endpoint_stats(endpoint_id, record)
