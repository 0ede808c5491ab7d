"""The FastAPI application: routes, problem documents, the body-size guard, the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI

import hookd
from hookd.api import metrics, problems, ratelimit
from hookd.api.limits import ENVELOPE_BYTES, BodySizeLimit
from hookd.api.routes import ROUTERS
from hookd.api.routes.events import BATCH_PATH, FastPublish
from hookd.engine import Engine

DESCRIPTION = """\
Webhook delivery: publish events, and hookd delivers them to every subscribed endpoint,
signed (Standard Webhooks), with retries and dead letters.

Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 problem documents
(`application/problem+json`).
"""


class _HookdAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with every 422 described as the problem document it is."""
        if self.openapi_schema is None:
            schema = super().openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components.update(problems.openapi_schemas())
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = problems.responses(422)[422]
            unavailable = {  # any /v1 route may find the database unreachable (StoreUnavailable)
                **problems.responses(503)[503],
                "description": "The database cannot be reached right now; retry shortly.",
            }
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation.setdefault("responses", {}).setdefault("503", unavailable)
            ratelimit.document(schema)  # 429 and the X-RateLimit-* headers on every /v1 route
        return self.openapi_schema or {}


def create_app(
    engine: Engine,
    *,
    on_startup: Callable[[Engine], Awaitable[None]] | None = None,
    manage_engine: bool = True,
) -> FastAPI:
    """The HTTP API over `engine`.

    With `manage_engine` (the default) the app's lifespan opens the engine at start-up and closes
    it at shutdown; otherwise the caller does. `on_startup` runs at start-up in both cases, after
    the engine is open (e.g. to register an admin key).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.open()
        try:
            if on_startup is not None:
                await on_startup(engine)
            yield
        finally:
            if manage_engine:
                await engine.close()

    app = _HookdAPI(
        title="hookd",
        version=hookd.__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.engine = engine
    for router in ROUTERS:
        app.include_router(router)
    # innermost first: the publish fast path runs inside the body limit and the rate limits
    app.add_middleware(FastPublish, engine=engine)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=engine.settings.max_payload_bytes + ENVELOPE_BYTES,
        per_path={BATCH_PATH: engine.settings.max_batch_bytes},
    )
    metrics.install(app, engine)  # GET /metrics, with this app's own registry
    ratelimit.install(app, engine.settings)  # outside the body limit: refuses before reading
    problems.install(app)  # outermost: answers whatever escapes everything else
    return app
