"""/v1/events: publish an event, read one back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller
from hookd.api.deps import EngineDep
from hookd.domain import errors

router = APIRouter(prefix="/v1/events", tags=["events"])


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
        **problems.responses(400, 401, 413, 422),
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
        auth.home_tenant(key),
        body.type,
        body.payload,
        idempotency_key=body.idempotency_key if idempotency_key is None else idempotency_key,
        occurred_at=None if body.occurred_at is None else body.occurred_at.timestamp(),
    )
    if result.duplicate:
        response.status_code = 200
    return serialize.event_accepted(result)


@router.get("/{event_id}", summary="Get an event", responses=problems.responses(401, 404))
async def get_event(event_id: str, key: Caller, engine: EngineDep) -> schemas.Event:
    return serialize.event(await engine.get_event(auth.scope(key), event_id))
