"""The outbound senders against raw HTTP peers on 127.0.0.1: one contract, both clients.

Every test that states the `Sender` contract runs on `HttpSender` (aiohttp) and `NativeSender`
(hookd.delivery.http1). The peers are raw asyncio servers, so a test can misbehave exactly as a
real receiver might: answer slowly or never, close idle connections, send 1xx first, frame a body
by closing, lie about its length, or send garbage. Tests for what only `NativeSender` promises
(the retry after a stale keep-alive connection, the idle sweep, fairness, TLS pinning) follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hookd.delivery.http1 import NativeSender
from hookd.delivery.sender import HttpSender, Outcome, Sender
from hookd.delivery.ssrf import AddressPolicy
from hookd.policy.retry import ErrorKind

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8", "::1/128"])
PUBLIC_ONLY = AddressPolicy()
BODY = b'{"type":"order.filled","data":{"n":1}}'
HEADERS = {"content-type": "application/json", "user-agent": "hookd/test", "webhook-id": "msg_1"}


# --------------------------------------------------------------------------------------------
# a raw HTTP peer


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


class Peer:
    """One accepted connection, as the handler sees it."""

    def __init__(
        self, server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.index = server.connections  # 1-based number of this connection
        self.served = 0

    async def request(self) -> Request | None:
        """The next request on this connection, or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        raw = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                raw.append((name, value.strip()))
        headers = {k.lower(): v for k, v in raw}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, raw, body)
        self.server.requests.append(request)
        self.served += 1
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Peer], Awaitable[None]]


def response(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    reason: str = "OK",
    close: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def keep_alive(reply: bytes | Callable[[Peer, Request], bytes]) -> Handler:
    """Answer every request on the connection with `reply`, keeping it open."""

    async def handle(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            await peer.send(reply(peer, request) if callable(reply) else reply)

    return handle


@dataclass
class RawServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    active: int = 0
    max_active: int = 0
    closed_by_client: int = 0
    requests: list[Request] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hook?x=1"

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> RawServer:
        self._server = await asyncio.start_server(
            self._accept, self.host, 0, ssl=ssl_context, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(Peer(self, reader, writer))
            if reader.at_eof():
                self.closed_by_client += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.active -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._writers.discard(writer)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        for _ in range(100):
            if not self._tasks and not self._writers:
                break
            await asyncio.sleep(0.01)
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(
        handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
    ) -> RawServer:
        server = RawServer(handler, host)
        servers.append(server)
        return await server.start(ssl_context)

    yield start
    for server in servers:
        await server.stop()


SENDERS = {"aiohttp": HttpSender, "native": NativeSender}


@pytest.fixture(params=sorted(SENDERS))
async def make_sender(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Sender]]:
    made: list[Sender] = []

    def make(policy: AddressPolicy = LOOPBACK, **kwargs: Any) -> Sender:
        sender: Sender = SENDERS[request.param](policy, **kwargs)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.close()


@pytest.fixture
async def native() -> AsyncIterator[Callable[..., NativeSender]]:
    made: list[NativeSender] = []

    def make(policy: AddressPolicy = LOOPBACK, **kwargs: Any) -> NativeSender:
        sender = NativeSender(policy, **kwargs)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.close()


async def post(sender: Sender, url: str, timeout: float = 5.0, **kwargs: Any) -> Outcome:
    return await sender.send(url, kwargs.pop("headers", HEADERS), BODY, timeout=timeout)


def failed(outcome: Outcome, kind: ErrorKind) -> None:
    assert outcome.status is None, outcome
    assert outcome.error_kind is kind, outcome
    assert outcome.error is not None and outcome.error.startswith(f"{kind.value}: "), outcome


# --------------------------------------------------------------------------------------------
# the contract, on both senders


async def test_request_shape(serve: Any, make_sender: Any) -> None:
    server = await serve(keep_alive(response(204)))
    outcome = await post(make_sender(), server.url)
    assert outcome.status == 204 and outcome.error_kind is None
    assert outcome.body_excerpt is None
    (request,) = server.requests
    assert request.method == "POST"
    assert request.target == "/hook?x=1"
    assert request.body == BODY
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == str(len(BODY))
    for name, value in HEADERS.items():
        assert request.headers[name] == value
    assert "accept-encoding" not in request.headers
    assert "transfer-encoding" not in request.headers


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, "OK"), (201, "Created"), (404, "Not Found"), (429, "Too Many"), (503, "Unavailable")],
)
async def test_statuses_headers_and_body(
    serve: Any, make_sender: Any, status: int, reason: str
) -> None:
    reply = response(status, b"hello \xe2\x9c\x93", {"Retry-After": "7", "X-Trace": "abc"})
    server = await serve(keep_alive(reply.replace(b"OK", reason.encode(), 1)))
    outcome = await post(make_sender(), server.url)
    assert outcome.status == status
    assert outcome.error_kind is None and outcome.error is None
    assert outcome.retry_after == "7"
    assert outcome.response_headers["x-trace"] == "abc"
    assert outcome.body_excerpt == "hello ✓"
    assert outcome.duration_ms > 0


async def test_a_redirect_is_just_a_status(serve: Any, make_sender: Any) -> None:
    target = await serve(keep_alive(response(200)))
    server = await serve(keep_alive(response(302, headers={"Location": target.url})))
    outcome = await post(make_sender(), server.url)
    assert outcome.status == 302
    assert outcome.response_headers["location"] == target.url
    assert target.requests == []


async def test_response_headers_are_bounded(serve: Any, make_sender: Any) -> None:
    headers = {f"X-H{i:03d}": f"v{i}" for i in range(100)}
    headers["X-H000"] = "y" * 2000
    server = await serve(keep_alive(response(200, headers=headers)))
    outcome = await post(make_sender(), server.url)
    assert outcome.status == 200
    assert len(outcome.response_headers) == 64
    assert all(name == name.lower() for name in outcome.response_headers)
    assert outcome.response_headers["x-h000"] == "y" * 512


async def test_the_excerpt_is_bounded(serve: Any, make_sender: Any) -> None:
    server = await serve(keep_alive(response(200, b"x" * 100_000)))
    sender = make_sender(excerpt_bytes=1000)
    outcome = await post(sender, server.url)
    assert outcome.status == 200
    assert outcome.body_excerpt == "x" * 1000
    assert (await post(sender, server.url)).status == 200
    if isinstance(sender, NativeSender):
        # not drained: that connection was dropped (aiohttp reuses it when the whole body had
        # already arrived by the time it was closed)
        assert server.connections == 2


async def test_a_body_at_the_excerpt_size_keeps_the_connection(
    serve: Any, make_sender: Any
) -> None:
    server = await serve(keep_alive(response(200, b"y" * 1000)))
    sender = make_sender(excerpt_bytes=1000)
    for _ in range(3):
        assert (await post(sender, server.url)).body_excerpt == "y" * 1000
    assert server.connections == 1


async def test_an_endless_body_is_not_drained(serve: Any, make_sender: Any) -> None:
    async def endless(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        await peer.send(b"z" * 65536)
        await asyncio.sleep(30)  # the rest never comes

    server = await serve(endless)
    outcome = await post(make_sender(excerpt_bytes=100), server.url, timeout=5)
    assert outcome.status == 200
    assert outcome.body_excerpt == "z" * 100
    assert outcome.duration_ms < 2000


async def test_chunked_body(serve: Any, make_sender: Any) -> None:
    async def chunked(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"hel", b"lo ", b"world"):
                await peer.send(b"%x\r\n%s\r\n" % (len(part), part))
                await asyncio.sleep(0.01)
            await peer.send(b"0\r\n\r\n")

    server = await serve(chunked)
    sender = make_sender()
    for _ in range(2):
        outcome = await post(sender, server.url)
        assert outcome.status == 200 and outcome.body_excerpt == "hello world"
    assert server.connections == 1  # chunked framing keeps the connection usable


async def test_keep_alive_reuses_one_connection(serve: Any, make_sender: Any) -> None:
    server = await serve(keep_alive(response(200, b"ok")))
    sender = make_sender()
    for _ in range(10):
        assert (await post(sender, server.url)).status == 200
    assert len(server.requests) == 10
    assert server.connections == 1


async def test_connection_close_is_honoured(serve: Any, make_sender: Any) -> None:
    async def once(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(response(200, b"bye", close=True))
            # the client must not send another request here
            assert await peer.request() is None

    server = await serve(once)
    sender = make_sender()
    for _ in range(3):
        outcome = await post(sender, server.url)
        assert outcome.status == 200 and outcome.body_excerpt == "bye"
    assert server.connections == 3
    assert len(server.requests) == 3


async def test_http10_close_delimited_body(serve: Any, make_sender: Any) -> None:
    async def http10(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(b"HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nfirst part, ")
            await asyncio.sleep(0.02)
            await peer.send(b"second part")
            peer.close()

    server = await serve(http10)
    sender = make_sender()
    for _ in range(2):
        outcome = await post(sender, server.url)
        assert outcome.status == 200, outcome
        assert outcome.body_excerpt == "first part, second part"
        assert outcome.response_headers["x-old"] == "yes"
    assert server.connections == 2


async def test_interim_1xx_responses_are_skipped(serve: Any, make_sender: Any) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\nX-Final: 1\r\n\r\ndone"
    )
    server = await serve(keep_alive(reply))
    sender = make_sender()
    for _ in range(2):
        outcome = await post(sender, server.url)
        assert outcome.status == 202
        assert outcome.body_excerpt == "done"
        assert outcome.response_headers.get("x-final") == "1"
        assert "link" not in outcome.response_headers
    assert server.connections == 1


async def test_server_closing_idle_connections(serve: Any, make_sender: Any) -> None:
    async def short_keepalive(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(response(200, b"ok"))
            await asyncio.sleep(0.05)  # then the idle connection is closed (FIN)

    server = await serve(short_keepalive)
    sender = make_sender()
    for _ in range(3):
        assert (await post(sender, server.url)).status == 200
        await asyncio.sleep(0.2)
    assert server.connections == 3
    assert len(server.requests) == 3


async def test_an_idle_connection_answered_with_408_is_not_reused(
    serve: Any, make_sender: Any
) -> None:
    async def times_out_idle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(response(200, b"ok"))
            await asyncio.sleep(0.05)  # idle too long: some servers say so before closing
            await peer.send(response(408, reason="Request Timeout", close=True))

    server = await serve(times_out_idle)
    sender = make_sender()
    for _ in range(2):
        outcome = await post(sender, server.url)
        assert (outcome.status, outcome.body_excerpt) == (200, "ok"), outcome
        await asyncio.sleep(0.2)
    assert server.connections == 2


async def test_timeout_on_a_server_that_never_answers(serve: Any, make_sender: Any) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(30)

    server = await serve(silent)
    started = time.monotonic()
    outcome = await post(make_sender(), server.url, timeout=0.3)
    failed(outcome, ErrorKind.TIMEOUT)
    assert outcome.error == "timeout: no complete response within 0.3s"
    assert 250 <= outcome.duration_ms < 1500
    assert time.monotonic() - started < 1.5


async def test_timeout_mid_body(serve: Any, make_sender: Any) -> None:
    async def stalls(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(30)

    server = await serve(stalls)
    failed(await post(make_sender(), server.url, timeout=0.3), ErrorKind.TIMEOUT)


async def test_connection_refused(make_sender: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await post(make_sender(), f"http://127.0.0.1:{port}/hook")
    failed(outcome, ErrorKind.CONNECTION)
    assert f"127.0.0.1:{port}" in (outcome.error or "")


async def test_a_server_closing_without_a_response(serve: Any, make_sender: Any) -> None:
    async def rude(peer: Peer) -> None:
        await peer.request()
        peer.close()

    server = await serve(rude)
    outcome = await post(make_sender(), server.url)
    failed(outcome, ErrorKind.CONNECTION)
    assert len(server.requests) == 1  # a fresh connection's failure is not retried


async def test_a_truncated_body_is_a_protocol_error(serve: Any, make_sender: Any) -> None:
    async def short(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        peer.close()

    server = await serve(short)
    failed(await post(make_sender(), server.url), ErrorKind.PROTOCOL)


@pytest.mark.parametrize(
    "garbage",
    [
        b"hello there\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nBad Header Name: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["not-http", "bad-status", "two-lengths", "bad-header", "bad-chunk"],
)
async def test_malformed_responses(serve: Any, make_sender: Any, garbage: bytes) -> None:
    async def broken(peer: Peer) -> None:
        await peer.request()
        await peer.send(garbage)
        await asyncio.sleep(1)

    server = await serve(broken)
    sender = make_sender()
    outcome = await post(sender, server.url, timeout=3)
    failed(outcome, ErrorKind.PROTOCOL)
    if isinstance(sender, NativeSender):  # aiohttp's message quotes the bad status line
        assert "hello" not in (outcome.error or "")


async def test_an_oversized_response_head_is_refused(serve: Any, make_sender: Any) -> None:
    async def huge(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\n")
        for i in range(20):
            await peer.send(f"X-Big-{i}: {'a' * 4000}\r\n".encode())
        await peer.send(b"X-Huge: " + b"b" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(1)

    server = await serve(huge)
    failed(await post(make_sender(), server.url, timeout=3), ErrorKind.PROTOCOL)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-evil": "a\r\nx-injected: 1"},
        {"x-evil": "a\nx-injected: 1"},
        {"x-evil": "a\rb"},
        {"x-evil": "nul\x00byte"},
        {"x-evil\r\nx-injected": "1"},
    ],
    ids=["crlf", "lf", "cr", "nul", "name"],
)
async def test_header_injection_is_refused(
    serve: Any, make_sender: Any, headers: dict[str, str]
) -> None:
    server = await serve(keep_alive(response(200)))
    outcome = await post(make_sender(), server.url, headers={**HEADERS, **headers})
    failed(outcome, ErrorKind.PROTOCOL)
    assert "injected" not in (outcome.error or "")
    await asyncio.sleep(0.05)
    assert server.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_unless_allowed(serve: Any, make_sender: Any, host: str) -> None:
    server = await serve(keep_alive(response(200)))
    outcome = await post(make_sender(PUBLIC_ONLY), f"http://{host}:{server.port}/hook")
    failed(outcome, ErrorKind.BLOCKED)
    assert "HOOKD_ALLOW_PRIVATE_NETWORKS" in (outcome.error or "")
    if host == "localhost":
        assert "localhost resolves only to refused addresses" in (outcome.error or "")
    else:
        assert "refusing to connect to 127.0.0.1" in (outcome.error or "")
    await asyncio.sleep(0.05)
    assert server.connections == 0
    # allowed, the same URL works
    allowed = await post(make_sender(LOOPBACK), f"http://{host}:{server.port}/hook")
    assert allowed.status == 200, allowed


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_literal(serve: Any, make_sender: Any) -> None:
    server = await serve(keep_alive(response(200, b"six")), host="::1")
    outcome = await post(make_sender(), f"http://[::1]:{server.port}/hook")
    assert outcome.status == 200 and outcome.body_excerpt == "six"
    assert server.requests[0].headers["host"] == f"[::1]:{server.port}"
    blocked = await post(make_sender(PUBLIC_ONLY), f"http://[::1]:{server.port}/hook")
    failed(blocked, ErrorKind.BLOCKED)


async def test_unresolvable_host_is_a_dns_error(make_sender: Any) -> None:
    outcome = await post(make_sender(), "http://no-such-host.invalid/hook", timeout=10)
    failed(outcome, ErrorKind.DNS)


async def test_many_concurrent_requests_to_a_slow_receiver(make_sender: Any) -> None:
    """2,000 requests in flight to a receiver that takes 0.5 s each, through 500 connections."""
    stats = {"connections": 0, "active": 0, "max_active": 0, "requests": 0}

    class Slow(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""
            stats["connections"] += 1
            stats["active"] += 1
            stats["max_active"] = max(stats["max_active"], stats["active"])

        def connection_lost(self, exc: Exception | None) -> None:
            stats["active"] -= 1

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) < length:
                    return
                self.buffer = rest[length:]
                stats["requests"] += 1
                loop.call_later(0.5, self._answer)

        def _answer(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(response(200, b"ok"))

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Slow, "127.0.0.1", 0, backlog=4096)
    try:
        port = server.sockets[0].getsockname()[1]
        sender = make_sender(max_connections=500)
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(post(sender, f"http://127.0.0.1:{port}/hook", timeout=30) for _ in range(2000))
        )
        elapsed = time.monotonic() - started
        assert [o.status for o in outcomes] == [200] * 2000
        assert stats["requests"] == 2000
        assert stats["max_active"] <= 500
        assert elapsed < 20, elapsed  # 4 rounds of 0.5 s, plus CPU on a shared machine
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()


# --------------------------------------------------------------------------------------------
# what NativeSender promises beyond the contract


async def test_native_retries_once_after_a_stale_keep_alive_connection(
    serve: Any, native: Any
) -> None:
    async def closes_the_second(peer: Peer) -> None:
        # a server whose idle close raced our write: the second request on a connection is read
        # and the connection closed without a response byte
        while await peer.request() is not None:
            if peer.served == 2:
                peer.close()
                return
            await peer.send(response(200, b"ok"))

    server = await serve(closes_the_second)
    sender = native()
    assert (await post(sender, server.url)).status == 200
    outcome = await post(sender, server.url)
    assert outcome.status == 200, outcome
    assert server.connections == 2
    assert len(server.requests) == 3  # the request was sent again, once


async def test_native_retries_only_once(serve: Any, native: Any) -> None:
    async def answers_first_only(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.index > 1 or peer.served > 1:
                peer.close()
                return
            await peer.send(response(200, b"ok"))

    server = await serve(answers_first_only)
    sender = native()
    assert (await post(sender, server.url)).status == 200
    outcome = await post(sender, server.url)
    failed(outcome, ErrorKind.CONNECTION)
    assert len(server.requests) == 3  # one retry on a fresh connection, and no more


async def test_native_does_not_retry_after_response_bytes(serve: Any, native: Any) -> None:
    async def half(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.served == 2:
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-")
                peer.close()
                return
            await peer.send(response(200, b"ok"))

    server = await serve(half)
    sender = native()
    assert (await post(sender, server.url)).status == 200
    failed(await post(sender, server.url), ErrorKind.CONNECTION)
    assert len(server.requests) == 2


async def test_native_closes_idle_connections(serve: Any, native: Any) -> None:
    server = await serve(keep_alive(response(200)))
    sender = native(keepalive_timeout=0.2)
    assert (await post(sender, server.url)).status == 200
    for _ in range(100):
        if server.active == 0:
            break
        await asyncio.sleep(0.05)
    assert server.active == 0 and server.closed_by_client == 1
    assert (await post(sender, server.url)).status == 200
    assert server.connections == 2


async def test_native_waiters_of_another_host_are_not_starved(serve: Any, native: Any) -> None:
    async def slowish(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.05)
            await peer.send(response(200, b"a"))

    busy = await serve(slowish)
    quiet = await serve(keep_alive(response(200, b"b")))
    sender = native(max_connections=2)
    done: list[str] = []

    async def one(url: str, name: str) -> None:
        outcome = await post(sender, url, timeout=30)
        assert outcome.status == 200
        done.append(name)

    tasks = [asyncio.create_task(one(busy.url, "busy")) for _ in range(2)]
    await asyncio.sleep(0.01)  # both connections busy: the quiet host's request waits first
    tasks.append(asyncio.create_task(one(quiet.url, "quiet")))
    await asyncio.sleep(0.01)
    tasks += [asyncio.create_task(one(busy.url, "busy")) for _ in range(60)]
    await asyncio.gather(*tasks)
    # busy requests reuse the busy host's connections ahead of the quiet one for at most
    # FAIRNESS_WINDOW (0.5 s, ~20 of them); then a connection is closed and its slot goes to the
    # quiet host. 62 requests of 50 ms over 2 connections take ~1.6 s.
    position = done.index("quiet")
    assert 2 < position < 40, position
    assert busy.connections == 3  # one extra connection: the one given away and reopened


async def test_native_timeout_while_waiting_for_a_connection(serve: Any, native: Any) -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.5)
            await peer.send(response(200))

    server = await serve(slow)
    sender = native(max_connections=1)
    first = asyncio.create_task(post(sender, server.url, timeout=5))
    await asyncio.sleep(0.05)
    failed(await post(sender, server.url, timeout=0.1), ErrorKind.TIMEOUT)
    assert (await first).status == 200
    # the slot accounting survived the timed-out waiter: the pool still works
    assert (await post(sender, server.url, timeout=5)).status == 200
    assert server.connections == 1


async def test_native_cancelled_send_frees_its_connection(serve: Any, native: Any) -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(10)

    server = await serve(slow)
    fast = await serve(keep_alive(response(200)))
    sender = native(max_connections=1)
    task = asyncio.create_task(post(sender, server.url, timeout=30))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await post(sender, fast.url, timeout=2)).status == 200


async def test_native_close_fails_requests_in_flight(serve: Any, native: Any) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(30)

    server = await serve(silent)
    sender = native(max_connections=1)
    tasks = [asyncio.create_task(post(sender, server.url, timeout=30)) for _ in range(3)]
    await asyncio.sleep(0.1)
    await sender.close()
    outcomes = await asyncio.gather(*tasks)
    for outcome in outcomes:
        failed(outcome, ErrorKind.CONNECTION)
    # and it can be used again afterwards
    ok = await serve(keep_alive(response(200)))
    assert (await post(sender, ok.url)).status == 200


async def test_native_invalid_urls_are_refused(native: Any) -> None:
    sender = native()
    for url in ("ftp://example.com/", "http:///nohost", "http://a b/", "http://u:p@host/"):
        failed(await post(sender, url), ErrorKind.BLOCKED)


async def test_native_host_header_from_the_caller_wins(serve: Any, native: Any) -> None:
    server = await serve(keep_alive(response(200)))
    headers = {**HEADERS, "Host": "example.test", "Content-Length": "999"}
    assert (await post(native(), server.url, headers=headers)).status == 200
    (request,) = server.requests
    assert [v for k, v in request.raw_headers if k.lower() == "host"] == ["example.test"]
    assert [v for k, v in request.raw_headers if k.lower() == "content-length"] == [str(len(BODY))]


# --------------------------------------------------------------------------------------------
# TLS: verified against the URL's host, connected to the vetted address


def _certificate(tmp: Path, names: list[str]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _tls_server(
    serve: Any, tmp_path: Path, names: list[str]
) -> tuple[RawServer, ssl.SSLContext, list[str | None]]:
    cert, key = _certificate(tmp_path, names)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    seen: list[str | None] = []

    def sni(_sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, _ctx: ssl.SSLSocket) -> None:
        seen.append(name)

    server_ctx.set_servername_callback(sni)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    server = await serve(keep_alive(response(200, b"secure")), ssl_context=server_ctx)
    return server, client_ctx, seen


async def test_native_https_verifies_the_url_host(serve: Any, native: Any, tmp_path: Path) -> None:
    server, client_ctx, sni = await _tls_server(serve, tmp_path, ["localhost"])
    sender = native(ssl_context=client_ctx)
    for _ in range(2):
        outcome = await post(sender, f"https://localhost:{server.port}/hook")
        assert outcome.status == 200 and outcome.body_excerpt == "secure", outcome
    assert sni == ["localhost"]  # one handshake, SNI = the URL's host
    assert server.connections == 1


async def test_native_https_refuses_a_certificate_for_another_name(
    serve: Any, native: Any, tmp_path: Path
) -> None:
    server, client_ctx, _ = await _tls_server(serve, tmp_path, ["other.example"])
    outcome = await post(native(ssl_context=client_ctx), f"https://localhost:{server.port}/")
    failed(outcome, ErrorKind.TLS)


async def test_native_https_to_an_ip_literal(serve: Any, native: Any, tmp_path: Path) -> None:
    server, client_ctx, _ = await _tls_server(serve, tmp_path, ["127.0.0.1"])
    outcome = await post(native(ssl_context=client_ctx), f"https://127.0.0.1:{server.port}/")
    assert outcome.status == 200, outcome


async def test_native_https_with_an_untrusted_certificate(
    serve: Any, native: Any, tmp_path: Path
) -> None:
    server, _, _ = await _tls_server(serve, tmp_path, ["localhost"])
    outcome = await post(native(), f"https://localhost:{server.port}/")  # the default CA store
    failed(outcome, ErrorKind.TLS)


# --------------------------------------------------------------------------------------------
# the same client under uvloop (the bench and production loop): one scenario, many paths


async def _router(peer: Peer) -> None:
    while (request := await peer.request()) is not None:
        path = request.target.partition("?")[0]
        if path == "/chunked":
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await peer.send(b"3\r\nabc\r\n0\r\n\r\n")
        elif path == "/interim":
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n" + response(201, b"made"))
        elif path == "/http10":
            await peer.send(b"HTTP/1.0 200 OK\r\n\r\nold")
            peer.close()
            return
        elif path == "/big":
            await peer.send(response(200, b"x" * 100_000))
        elif path == "/silent":
            await asyncio.sleep(30)
        elif path == "/garbage":
            await peer.send(b"NOT HTTP\r\n\r\n")
        elif path == "/stale" and peer.served > 1:
            peer.close()
            return
        else:
            await peer.send(response(200, b"ok"))


def test_native_under_uvloop(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        server = await RawServer(_router).start()
        stale = await RawServer(_router).start()
        cert, key = _certificate(tmp_path, ["localhost"])
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        tls = await RawServer(_router).start(server_ctx)
        client_ctx = ssl.create_default_context(cafile=str(cert))
        sender = NativeSender(LOOPBACK, max_connections=50, excerpt_bytes=100)
        tls_sender = NativeSender(LOOPBACK, ssl_context=client_ctx)
        base = f"http://127.0.0.1:{server.port}"
        try:
            ok = await post(sender, f"{base}/ok")
            assert (ok.status, ok.body_excerpt) == (200, "ok")
            assert (await post(sender, f"{base}/chunked")).body_excerpt == "abc"
            assert (await post(sender, f"{base}/interim")).status == 201
            assert (await post(sender, f"{base}/http10")).body_excerpt == "old"
            assert (await post(sender, f"{base}/big")).body_excerpt == "x" * 100
            failed(await post(sender, f"{base}/silent", timeout=0.2), ErrorKind.TIMEOUT)
            failed(await post(sender, f"{base}/garbage"), ErrorKind.PROTOCOL)
            stale_url = f"http://127.0.0.1:{stale.port}/stale"
            assert (await post(sender, stale_url)).status == 200
            assert (await post(sender, stale_url)).status == 200  # retried on a fresh one
            assert stale.connections == 2
            outcomes = await asyncio.gather(*(post(sender, f"{base}/ok") for _ in range(500)))
            assert {o.status for o in outcomes} == {200}
            assert server.max_active <= 50 + 3  # + the connections dropped above, closing
            secure = await post(tls_sender, f"https://localhost:{tls.port}/ok")
            assert secure.status == 200, secure
            failed(
                await post(sender, f"https://localhost:{tls.port}/ok"), ErrorKind.TLS
            )  # not trusted by the default context
        finally:
            await sender.close()
            await tls_sender.close()
            for raw in (server, stale, tls):
                await raw.stop()

    uvloop.run(scenario())
