"""/healthz (the process answers) and /readyz (it can do its work). No authentication."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

import hookd
from hookd.api import problems, schemas
from hookd.api.deps import EngineDep
from hookd.api.jsonbody import StrictJSONRoute

log = logging.getLogger("hookd.api")

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


@router.get("/healthz", summary="Liveness")
async def healthz() -> schemas.Health:
    return schemas.Health(status="ok", version=hookd.__version__)


@router.get(
    "/readyz",
    summary="Readiness: the database answers and the worker (if any) runs",
    responses=problems.responses(503),
    response_model=schemas.Ready,
)
async def readyz(engine: EngineDep) -> Response | schemas.Ready:
    reason = await engine.not_ready_reason()
    if reason is not None:
        log.warning("not ready: %s", reason)
        return problems.problem_response(503, reason)
    return schemas.Ready(status="ready")
