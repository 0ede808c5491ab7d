"""A real HTTP receiver on 127.0.0.1 for tests: records every request, answers as scripted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Received:
    headers: Mapping[str, str]
    body: bytes
    at: float
    path: str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


#: Decides the reply to the n-th request (1-based) overall and n-th for this webhook-id.
Script = Callable[[Received, int, int], Reply | Awaitable[Reply]]


def always(status: int, **kwargs: Any) -> Script:
    return lambda _r, _n, _k: Reply(status, **kwargs)


def sequence(*statuses: int) -> Script:
    """Per webhook-id: the k-th try gets statuses[k-1] (the last one repeats)."""
    return lambda _r, _n, k: Reply(statuses[min(k, len(statuses)) - 1])


class Receiver:
    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or always(200)
        self.requests: list[Received] = []
        self._tries: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most there ever were at once

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            dict(request.headers.items()), await request.read(), time.time(), request.path
        )
        received = Received(
            {k.lower(): v for k, v in received.headers.items()},
            received.body,
            received.at,
            received.path,
        )
        self.requests.append(received)
        key = received.headers.get("webhook-id", "")
        self._tries[key] = self._tries.get(key, 0) + 1
        reply = self.script(received, len(self.requests), self._tries[key])
        if not isinstance(reply, Reply):
            reply = await reply
        self._changed.set()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    def ids(self) -> set[str]:
        return {r.id for r in self.requests}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s; got {len(self.requests)} requests"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
