"""A bound on request bodies, as pure ASGI middleware.

A declared `Content-Length` over the limit is refused before anything is read; a body without
one (chunked) is counted as it streams, and reading stops with a 413 as soon as it passes the
limit. Nothing is buffered here, so no body is ever read unbounded.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookd.api import problems

#: Room for the envelope around a payload (type, idempotency key, JSON syntax).
ENVELOPE_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    An `HTTPException`, so that FastAPI passes it through its body parsing untouched and the
    problem handler answers it (413); `BodySizeLimit` answers it itself if nobody else did.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body exceeds the limit of {limit} bytes",
            headers={"Connection": "close"},  # the rest of the body is not read
        )


class BodySizeLimit:
    """`max_bytes` for every request, except the paths in `per_path` (exact match), which have
    their own limit (the batch publish route takes a larger body)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                response = problems.problem_response(400, "the Content-Length header is invalid")
                await response(scope, receive, send)
                return
            if int(declared) > limit:
                await _refuse(limit, scope, receive, send)
                return
        received = 0
        started = False

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_tracked)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(limit, scope, receive, send)


async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    exc = BodyTooLarge(limit)
    response = problems.problem_response(413, exc.detail, headers=exc.headers)
    await response(scope, receive, send)
