"""/v1/events: publish an event or a batch, list events, read one back.

The two publish routes also have a fast path, `FastPublish`: see there.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import pydantic
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookd.api import auth, problems, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.api.schemas import Timestamp
from hookd.domain import errors
from hookd.domain.models import PublishResult
from hookd.engine import MAX_BATCH, Engine, EventInput
from hookd.store.port import ApiKey, EventFilter

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=StrictJSONRoute)

#: The single publish route.
PUBLISH_PATH = "/v1/events"
#: The batch route, which takes a larger body than the others (`HOOKD_MAX_BATCH_BYTES`).
BATCH_PATH = "/v1/events/batch"


async def publish_one(
    engine: Engine, key: ApiKey, body: schemas.EventCreate, idempotency_key: str | None
) -> PublishResult:
    """`POST /v1/events` once the request is read: the route and `FastPublish` share it."""
    if idempotency_key is not None and body.idempotency_key not in (None, idempotency_key):
        raise errors.ValidationError(
            "invalid event",
            [errors.Problem("idempotency_key", "differs from the Idempotency-Key header")],
        )
    return await engine.publish(
        auth.target_tenant(key, body.tenant_id),
        body.type,
        body.payload,
        idempotency_key=body.idempotency_key if idempotency_key is None else idempotency_key,
        occurred_at=None if body.occurred_at is None else body.occurred_at.timestamp(),
        priority=body.priority,
    )


async def publish_many(
    engine: Engine, key: ApiKey, body: schemas.EventBatch | PlainBatch
) -> list[PublishResult]:
    """`POST /v1/events/batch` once the request is read: the route and `FastPublish` share it."""
    tenant_id, items = (
        body if isinstance(body, tuple) else (body.tenant_id, [event_input(i) for i in body.events])
    )
    return await engine.publish_batch(auth.target_tenant(key, tenant_id), items)


def event_input(item: schemas.EventBatchItem) -> EventInput:
    """A batch item as the engine takes it."""
    return EventInput(
        type=item.type,
        payload=item.payload,
        idempotency_key=item.idempotency_key,
        occurred_at=None if item.occurred_at is None else item.occurred_at.timestamp(),
        priority=item.priority,
    )


#: A batch body of the plain shape (`plain_batch`): its tenant_id and its events.
PlainBatch = tuple[str | None, list[EventInput]]
_BATCH_FIELDS = frozenset({"events", "tenant_id"})
_PLAIN_ITEM_FIELDS = frozenset({"type", "payload", "idempotency_key", "priority"})


def plain_batch(data: object) -> PlainBatch | None:
    """A parsed batch body as `EventBatch` would read it, when it has the plain shape that model
    takes as it is; None for anything else, which the model itself must look at.

    Plain: an object of `events` (a list of 1..`MAX_BATCH` items) and an optional string
    `tenant_id`; each item an object with a string `type`, an object `payload`, and optionally a
    string `idempotency_key` and an integer `priority` (each may be null). Whatever is not
    plain (an `occurred_at`, which the model parses, an unknown field, a wrong type, a size out
    of bounds) is left to the model, so the answers to bad bodies are the model's.

    The model builds a copy of every item (and of every payload); this checks the types only,
    a fraction of that cost on a 1,000-event batch.
    """
    if type(data) is not dict or not data.keys() <= _BATCH_FIELDS:
        return None
    events = data.get("events")
    tenant_id = data.get("tenant_id")
    if type(events) is not list or not 1 <= len(events) <= MAX_BATCH:
        return None
    if tenant_id is not None and type(tenant_id) is not str:
        return None
    items: list[EventInput] = []
    fields = _PLAIN_ITEM_FIELDS
    for item in events:
        if type(item) is not dict or not item.keys() <= fields:
            return None
        name = item.get("type")
        payload = item.get("payload")
        key = item.get("idempotency_key")
        priority = item.get("priority")
        if (
            type(name) is not str
            or type(payload) is not dict
            or (key is not None and type(key) is not str)
            or (priority is not None and type(priority) is not int)
        ):
            return None
        items.append(EventInput(name, payload, key, None, priority))
    return tenant_id, items


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
    result = await publish_one(engine, key, body, idempotency_key)
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
    return serialize.event_batch_accepted(await publish_many(engine, key, body))


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


# the fast path ----------------------------------------------------------------------------------
class FastPublish:
    """ASGI middleware: the two publish routes' success path, without FastAPI's machinery.

    Routing, dependency injection and response validation cost several times what storing an
    event does. For `POST /v1/events` and `POST /v1/events/batch` with an `application/json` body
    that the route's model accepts and a valid API key, this reads the body, validates it with the
    same pydantic model, authenticates through the same key cache, publishes through the same
    functions (`publish_one`, `publish_many`) and answers the same JSON (`serialize`), with the
    engine's errors as the same problem documents (`problems.hookd_error`).

    Anything else (no or another content type, malformed JSON, a body the model refuses, a
    missing or invalid key, a repeated header) is handed on, body and all, to the FastAPI routes,
    which stay the contract: they give every such answer, and they are what OpenAPI documents.
    Installed inside the rate-limit and body-size middleware, so those apply to both paths.
    """

    def __init__(self, app: ASGIApp, *, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path != PUBLISH_PATH and path != BATCH_PATH:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # BodySizeLimit bounds it (BodyTooLarge, a 413)
        if body is None:  # the client went away: nobody to answer
            return
        answer = await self._answer(scope, path, headers, body)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        if isinstance(answer, Response):  # a problem document
            await answer(scope, receive, send)
            return
        status, content = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(
        self, scope: Scope, path: str, headers: dict[bytes, str], body: bytes
    ) -> tuple[int, bytes] | Response | None:
        """(status, JSON body), a problem, or None: the FastAPI route answers this one."""
        scheme, _, token = headers.get(b"authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            data = orjson.loads(body)
            model: schemas.EventCreate | schemas.EventBatch | PlainBatch = (
                schemas.EventCreate.model_validate(data)
                if path == PUBLISH_PATH
                else plain_batch(data) or schemas.EventBatch.model_validate(data)
            )
            key = await self.engine.authenticate(token)
        except (orjson.JSONDecodeError, pydantic.ValidationError, errors.HookdError):
            return None  # 400, 422, 401 or 503: the route says which, and how
        try:
            if isinstance(model, schemas.EventCreate):
                result = await publish_one(self.engine, key, model, headers.get(b"idempotency-key"))
                content = orjson.dumps(serialize.event_accepted_fields(result))
                return (200 if result.duplicate else 202), content
            results = await publish_many(self.engine, key, model)
            return 202, orjson.dumps(
                {"data": [serialize.event_accepted_fields(r) for r in results]}
            )
        except errors.HookdError as exc:
            return problems.hookd_error(Request(scope), exc)


_WANTED = frozenset({b"authorization", b"content-type", b"idempotency-key"})


def _headers(scope: Scope) -> dict[bytes, str] | None:
    """The headers the fast path reads, or None when the request is not for it: a content type
    other than `application/json`, or one of those headers repeated."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name in _WANTED:
            if name in found:
                return None
            found[name] = value.decode("latin-1")
    content_type = found.get(b"content-type", "").partition(";")[0].strip().lower()
    return found if content_type == "application/json" else None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnects first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` again (in one message), then whatever `receive` gives."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
