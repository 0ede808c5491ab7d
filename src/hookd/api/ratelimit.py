"""Rate limits on the API: token buckets per API key and per client IP, as pure ASGI middleware.

Every `/v1` request takes one token from its client IP's bucket and, when it carries
`Authorization: Bearer <key>`, one from that key's bucket. Both limits apply; a request either
refuses is answered `429` (a problem document with `Retry-After`), and then nothing further is
taken. Other paths (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) are not limited.

Every `/v1` response carries the stricter bucket's state (the one with fewer tokens left):

    X-RateLimit-Limit      the bucket's size: the most requests allowed at once (the burst)
    X-RateLimit-Remaining  whole requests left in it now
    X-RateLimit-Reset      seconds (an integer, rounded up) until it is full again; like
                           Retry-After, a delay and not a time
    Retry-After            (429 only) seconds until one request would be allowed

The key's bucket is chosen by a hash of the key as presented, before anyone checks it, so a valid
and an invalid key are limited alike: the answer tells nothing the 401 does not. The middleware
never touches the database.

Buckets live in this process's memory, the least recently used forgotten past `max_tracked`
per limit (a forgotten bucket counts as full), so memory stays bounded whatever the clients do.
With N API processes (PostgreSQL) a client may get up to N times the configured rate.

Test sends (`POST /v1/endpoints/{id}/test`) take a token from a tighter bucket of the endpoint
as well (`SendTestLimit`, checked by the route once the endpoint is known to the caller).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookd.api import problems
from hookd.config import RateLimit, Settings
from hookd.policy import ratelimit
from hookd.policy.ratelimit import TokenBuckets, Verdict

LIMITED_PREFIX = "/v1/"
HEADER_LIMIT = ratelimit.HEADER_LIMIT
HEADER_REMAINING = ratelimit.HEADER_REMAINING
HEADER_RESET = ratelimit.HEADER_RESET


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        per_key: RateLimit | None,
        per_ip: RateLimit | None,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.keys = (
            None if per_key is None else TokenBuckets(per_key, max_keys=max_tracked, clock=clock)
        )
        self.ips = (
            None if per_ip is None else TokenBuckets(per_ip, max_keys=max_tracked, clock=clock)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(LIMITED_PREFIX)
            or (self.keys is None and self.ips is None)
        ):
            await self.app(scope, receive, send)
            return
        verdict = self._check(scope)
        if verdict is None:  # only a key limit, and no key: the 401 follows
            await self.app(scope, receive, send)
            return
        if not verdict.allowed:
            response = problems.problem_response(
                429,
                f"too many requests; retry in {verdict.headers()['Retry-After']} s",
                headers=verdict.headers(),
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if HEADER_LIMIT not in headers:  # a route's own, tighter limit answers
                    headers.update(verdict.headers())
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _check(self, scope: Scope) -> Verdict | None:
        verdicts: list[Verdict] = []
        if self.ips is not None:
            client = scope.get("client")
            verdicts.append(self.ips.take(client[0] if client else "unknown"))
            if not verdicts[-1].allowed:
                return verdicts[-1]
        if self.keys is not None:
            key = bearer_token(Headers(scope=scope))
            if key is not None:
                verdicts.append(self.keys.take(hashlib.sha256(key.encode()).digest()))
                if not verdicts[-1].allowed:
                    return verdicts[-1]
        return min(verdicts, key=lambda v: (v.remaining, -v.reset), default=None)


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# the test-send limit --------------------------------------------------------------------------
class SendTestLimit:
    """The tighter limit on test sends, one bucket per endpoint."""

    def __init__(self, rate: RateLimit | None, *, max_tracked: int = 10_000) -> None:
        self.buckets = None if rate is None else TokenBuckets(rate, max_keys=max_tracked)

    def take(self, endpoint_id: str) -> dict[str, str]:
        """The rate-limit headers for a test send to `endpoint_id`; a 429 when it is over."""
        if self.buckets is None:
            return {}
        verdict = self.buckets.take(endpoint_id)
        if not verdict.allowed:
            raise HTTPException(
                429,
                f"at most {self.buckets.rate.burst} test sends to an endpoint in a row, then one "
                f"every {1 / self.buckets.rate.per_second:g} s; retry in "
                f"{verdict.headers()['Retry-After']} s",
                headers=verdict.headers(),
            )
        return verdict.headers()


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware and the test-send limit (`app.state.test_send_limit`) to `app`."""
    app.state.test_send_limit = SendTestLimit(
        settings.rate_limit_test_send, max_tracked=settings.rate_limit_max_tracked
    )
    app.add_middleware(
        RateLimitMiddleware,
        per_key=settings.rate_limit_per_key,
        per_ip=settings.rate_limit_per_ip,
        max_tracked=settings.rate_limit_max_tracked,
    )


# OpenAPI ----------------------------------------------------------------------------------------
_HEADER_DOCS = {
    HEADER_LIMIT: "The rate limit's bucket size: the most requests allowed at once.",
    HEADER_REMAINING: "Requests left in the bucket now.",
    HEADER_RESET: "Seconds until the bucket is full again (a delay, not a time).",
    "Retry-After": "Seconds to wait before the next request would be allowed.",
}


def document(schema: dict[str, Any]) -> None:
    """Add the rate-limit headers to every `/v1` response, and the 429 answer, to `schema`."""
    components = schema.setdefault("components", {})
    components.setdefault("headers", {}).update(
        {
            name: {"description": text, "schema": {"type": "integer", "minimum": 0}}
            for name, text in _HEADER_DOCS.items()
        }
    )
    ref = {name: {"$ref": f"#/components/headers/{name}"} for name in _HEADER_DOCS}
    rate_headers = {name: ref[name] for name in (HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET)}
    too_many = {
        "description": "Too many requests: a rate limit is exhausted; retry after `Retry-After` "
        "seconds.",
        "headers": {**rate_headers, "Retry-After": ref["Retry-After"]},
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(LIMITED_PREFIX):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for response in responses.values():
                response.setdefault("headers", {}).update(rate_headers)
            responses["429"] = too_many
