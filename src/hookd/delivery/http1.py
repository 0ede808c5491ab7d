"""A small HTTP/1.1 client for webhook POSTs: `NativeSender`, the fast `Sender`.

`HttpSender` (aiohttp) spends most of a delivery's CPU inside the client; this one does only
what a webhook POST needs, on an `asyncio.Protocol` (stock loop and uvloop alike), with the
response parsed by `httptools` (llhttp, the parser uvicorn uses).

One request:

1. The URL is parsed once and cached: scheme, host, port, the request line and `Host` header
   pre-formatted. IP literals are checked against the `AddressPolicy` right there.
2. The head is built from the pre-formatted prefix and the caller's headers (names must be
   tokens, values must not hold CR, LF or NUL: a refused header is a PROTOCOL outcome, nothing is
   sent), with `Content-Length` set by us (a caller's Content-Length or Transfer-Encoding is
   dropped, a caller's Host replaces ours); head and body go out in one write. Each distinct set
   of header names is validated once and cached.
3. A connection comes from the keep-alive pool of its (scheme, host, port) (last used first);
   else a new one is opened when fewer than `max_connections` sockets exist (idle connections of
   other hosts are closed to make room). Otherwise the request waits in one FIFO queue. A
   released connection goes to the oldest waiter for its own host; if the oldest waiter overall
   is for another host and has waited longer than `FAIRNESS_WINDOW`, the connection is closed
   and its slot handed to that waiter instead, so a busy host cannot starve a quiet one.
4. New connections resolve the host (`loop.getaddrinfo`, deduplicated, cached `DNS_TTL`
   seconds), keep only the addresses the policy allows (none left: a BLOCKED outcome worded like
   `BlockedAddress`) and connect to those vetted addresses in turn, never re-resolving (one
   gets at most `CONNECT_ATTEMPT_TIMEOUT` while others remain to be tried). For https the
   default SSL context verifies the certificate against the URL's host (`server_hostname`, which
   is also the SNI) while the socket goes to the pinned address.
5. The response completes a future the protocol owns; the send coroutine just awaits it (no
   extra task, no timer of its own). Deadlines of requests in flight sit in buckets of 50 ms
   (`TICKS_PER_SECOND`) swept by one timer, which fails a late request's future and aborts its
   connection: a timeout fires at most one tick late, and a request costs a set add and discard
   instead of a timer. Waiting for a slot, DNS, connect and TLS (the slow path) run under
   `asyncio.timeout_at` of the same deadline, so it covers the whole request.
6. Only the first `excerpt_bytes` of the body are kept. A larger body is not drained: the
   connection is dropped as soon as one byte more than the excerpt arrived. Content-Length,
   chunked and close-delimited bodies, HTTP/1.0, `Connection: close` and interim 1xx responses
   are handled; the response head is capped at `MAX_HEAD_BYTES`. No redirects, no decompression.
7. A request on a *reused* connection that fails before any response byte arrived (the server
   closed the idle socket as we wrote) is sent again, once, on a fresh connection. Nothing else
   is retried here: retries are the worker's business.

Idle connections are closed after `keepalive_timeout` seconds (a sweep each second while any
are idle), a little under the 5 s default of common servers so that we rarely race them.
Errors become `Outcome`s classified like `classify_exception` does for aiohttp; their messages
never hold header values or bodies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

import httptools

from hookd.delivery.sender import MAX_HEADER_VALUE, MAX_RESPONSE_HEADERS, Outcome
from hookd.delivery.ssrf import AddressPolicy, literal_address
from hookd.domain import errors
from hookd.policy.retry import ErrorKind

MAX_HEAD_BYTES: Final = 64 * 1024  # the response's status line and headers, all interim ones too
MAX_INTERIM_RESPONSES: Final = 16
DNS_TTL: Final = 10.0
DNS_CACHE_SIZE: Final = 1024
TARGET_CACHE_SIZE: Final = 4096
SWEEP_INTERVAL: Final = 1.0
CONNECT_ATTEMPT_TIMEOUT: Final = 2.0  # per address when a host has more than one
TICKS_PER_SECOND: Final = 20  # deadline granularity: a timeout fires at most 50 ms late
FAIRNESS_WINDOW: Final = 0.5  # seconds the oldest waiter may be passed over for a same-host one

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

# request header names we do not just pass on (sets of names are validated once, then cached)
_DROPPED, _HOST = 1, 2
_ROLES = {"content-length": _DROPPED, "transfer-encoding": _DROPPED, "host": _HOST}
_PLAN_CACHE_SIZE = 4096
# response header names, lower-cased (a bounded cache: most receivers send the same few names)
_RESPONSE_NAMES: dict[bytes, str] = {}
_RESPONSE_NAMES_SIZE = 2048
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class _Failure(Exception):
    """A classified failure: becomes an error `Outcome` with this kind and message."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Stale(_Failure):
    """A reused connection ended before any response byte: the server closed it while idle."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.CONNECTION, message)


class _HeadTooLarge(Exception):
    pass


class _Target:
    """A parsed URL, cached: where to connect and the pre-formatted start of the request."""

    __slots__ = (
        "blocked",
        "host",
        "key",
        "pinned",
        "port",
        "request_head",
        "server_hostname",
        "start",
    )

    def __init__(
        self,
        key: tuple[str, str, int],
        host: str,
        port: int,
        request_head: str,
        pinned: tuple[str, ...] | None,
        blocked: str | None,
        server_hostname: str | None,
    ) -> None:
        self.key = key
        self.host = host
        self.port = port
        self.request_head = request_head  # "POST /path HTTP/1.1\r\n"
        self.start = f"{request_head}Host: {key[1]}\r\n"
        self.pinned = pinned  # the address of an IP literal, already vetted
        self.blocked = blocked  # the SSRF refusal of an IP literal
        self.server_hostname = server_hostname  # https only


class _Waiter:
    __slots__ = ("fresh", "future", "key", "since")

    def __init__(
        self,
        key: tuple[str, str, int],
        future: asyncio.Future[_Connection | None],
        since: float,
        fresh: bool,
    ) -> None:
        self.key = key
        self.future = future
        self.since = since
        self.fresh = fresh  # must not be handed a used connection (the retry after a stale one)


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the state of the response it is reading."""

    __slots__ = (
        "_head_raw",
        "_interim",
        "body",
        "body_size",
        "closed",
        "extra",
        "framed",
        "gen",
        "got_bytes",
        "head_bytes",
        "headers",
        "headers_done",
        "holds_slot",
        "idle_since",
        "keep_alive",
        "key",
        "message_done",
        "oversized",
        "owner",
        "parser",
        "reused",
        "slot",
        "status",
        "transport",
        "uses",
        "waiter",
    )

    def __init__(self, owner: NativeSender, key: tuple[str, str, int]) -> None:
        self.owner = owner
        self.key = key
        self.gen = owner._gen  # the sender's generation: close() starts a new one
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False  # the transport is gone or going: never reuse
        self.holds_slot = False  # counts against the sender's max_connections
        self.idle_since = 0.0
        self.uses = 0
        self.slot = 0  # the deadline bucket of the request in flight (0: none)
        self._reset_response()
        self.reused = False
        self.got_bytes = False
        self.extra = False
        self._interim = 0

    def _reset_response(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_bytes = 0
        self._head_raw = 0
        self.headers_done = False
        self.message_done = False
        self.framed = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.oversized = False

    # -- the sender's side ---------------------------------------------------------------------

    def start(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Send one request; the future completes when its response (or failure) is in."""
        self._reset_response()
        self.reused = self.uses > 0
        self.uses += 1
        self.got_bytes = False
        self._interim = 0
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiter = waiter
        transport = self.transport
        if transport is None or self.closed:
            self._fail(_Stale("the connection was closed") if self.reused else _disconnected())
        else:
            transport.write(data)
        return waiter

    def reusable(self) -> bool:
        return self.message_done and self.keep_alive and not self.closed and not self.extra

    def excerpt(self, limit: int) -> str | None:
        body = self.body
        if not body:
            return None
        data = body[0] if len(body) == 1 else b"".join(body)
        if not data:
            return None
        return data[:limit].decode("utf-8", errors="replace")

    def on_deadline(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())
            self.abort()

    def close(self) -> None:
        """Close gracefully (the response was read in full); frees the slot now."""
        self.closed = True
        self.owner._drop(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (unread data, an error, a timeout)."""
        self.closed = True
        self.owner._drop(self)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        try:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # pragma: no cover - not a TCP socket
            pass
        self.owner._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._lost(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.framed and self.status >= 200 and exc is None:
            self.message_done = True  # a close-delimited body ends here
            self.keep_alive = False
            waiter.set_result(None)
        elif not self.got_bytes:
            message = (
                "the server closed the connection without a response"
                if exc is None
                else (str(exc) or type(exc).__name__)
            )
            waiter.set_exception(
                _Stale(message) if self.reused else _Failure(ErrorKind.CONNECTION, message)
            )
        elif not self.headers_done:
            waiter.set_exception(
                _Failure(ErrorKind.CONNECTION, "the server closed the connection mid-response")
            )
        else:
            waiter.set_exception(
                _Failure(ErrorKind.PROTOCOL, "invalid HTTP response: the body ended before its end")
            )

    def eof_received(self) -> bool | None:
        self.closed = True  # never handed out again; connection_lost decides what the EOF meant
        return None  # close our side too

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: the connection is out of step
            return
        self.got_bytes = True
        if not self.headers_done:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_Failure(ErrorKind.PROTOCOL, "invalid HTTP response: unexpected upgrade"))
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                message = f"invalid HTTP response: the response head exceeds {MAX_HEAD_BYTES} bytes"
            elif isinstance(exc.__context__, _Failure):
                message = exc.__context__.message
            else:
                message = f"invalid HTTP response: {exc}"
            self._fail(_Failure(ErrorKind.PROTOCOL, message))
            return
        if not self.headers_done and self._head_raw > MAX_HEAD_BYTES:
            self._fail(
                _Failure(
                    ErrorKind.PROTOCOL,
                    f"invalid HTTP response: the response head exceeds {MAX_HEAD_BYTES} bytes",
                )
            )
        elif self.oversized or self.extra:
            self.abort()  # don't drain a big body; don't trust a connection that over-sent

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.message_done:
            self.extra = True  # a second response to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        if self.message_done:
            return  # a response after the response: `extra` is set, the outcome stays as it was
        key = _RESPONSE_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_RESPONSE_NAMES) < _RESPONSE_NAMES_SIZE:
                _RESPONSE_NAMES[name] = key
        if key in _FRAMING and (key == "content-length" or b"chunked" in value.lower()):
            self.framed = True
        headers = self.headers
        if len(headers) < MAX_RESPONSE_HEADERS:
            headers[key] = value.decode("utf-8", "replace")[:MAX_HEADER_VALUE]
        # like _bounded_headers: nothing more is kept once 64 names are

    def on_headers_complete(self) -> None:
        if self.message_done:
            return
        self.headers_done = True
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.message_done:  # past the excerpt, or a response after the response
            return
        size = self.body_size + len(body)
        self.body.append(body)
        self.body_size = size
        if size > self.owner._excerpt_bytes:
            self.oversized = True
            self.message_done = True
            self.keep_alive = False
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self.message_done:
            return
        if self.status < 200:  # an interim response (100 Continue, 103 Early Hints): skip it
            self._interim += 1
            if self._interim > MAX_INTERIM_RESPONSES:
                raise _Failure(ErrorKind.PROTOCOL, "invalid HTTP response: too many 1xx responses")
            self._reset_response()
            return
        self.message_done = True
        self.keep_alive = self.parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _disconnected() -> _Failure:
    return _Failure(ErrorKind.CONNECTION, "the server closed the connection without a response")


class NativeSender:
    """The `Sender` on a hand-written HTTP/1.1 client (see the module docstring)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_connections: int = 512,
        excerpt_bytes: int = 4096,
        keepalive_timeout: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._policy = policy
        self._limit = max_connections
        self._excerpt_bytes = excerpt_bytes
        self._keepalive = keepalive_timeout
        self._ssl = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._targets: dict[str, _Target] = {}
        self._plans: dict[tuple[str, ...], bool] = {}
        self._gen = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self._gen += 1
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._connections: set[_Connection] = set()
        self._total = 0  # sockets holding a slot: open, or being opened
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._key_waiters: dict[tuple[str, str, int], collections.deque[_Waiter]] = {}
        self._dns: dict[str, tuple[float, tuple[str, ...] | str]] = {}
        self._dns_pending: dict[str, asyncio.Task[tuple[str, ...] | str]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # deadlines of requests in flight, bucketed by tick (one timer for them all)
        self._deadlines: dict[int, set[_Connection]] = {}
        self._next_slot = 0
        self._ticker: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Future[None] | None = None

    # -- the Sender protocol -------------------------------------------------------------------

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Outcome:
        started = time.perf_counter()
        try:
            target = self._targets.get(url)
            if target is None:
                target = self._parse(url)
            if target.blocked is not None:
                raise _Failure(ErrorKind.BLOCKED, target.blocked)
            data = self._request(target, headers, body)
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                self._bind(loop)
            deadline = loop.time() + timeout
            conn = self._take_idle(target.key)
            retried = False
            while True:
                if conn is None:
                    conn = await self._checkout(target, deadline, fresh=retried)
                waiter = conn.start(data, loop)
                self._arm(conn, deadline)
                try:
                    await waiter
                except _Stale:
                    self._disarm(conn)
                    if retried:
                        raise
                    retried = True
                    conn = None
                    continue
                except BaseException:
                    self._disarm(conn)
                    conn.abort()
                    raise
                self._disarm(conn)
                break
            outcome = Outcome(
                duration_ms=(time.perf_counter() - started) * 1000,
                status=conn.status,
                response_headers=conn.headers,
                body_excerpt=conn.excerpt(self._excerpt_bytes),
            )
            conn.waiter = None
            if conn.reusable():
                self._checkin(conn)
            elif conn.oversized or conn.extra:
                conn.abort()
            else:
                conn.close()
            return outcome
        except _Failure as exc:
            return _failure(started, exc.kind, exc.message)
        except TimeoutError:
            return _failure(started, ErrorKind.TIMEOUT, f"no complete response within {timeout:g}s")
        except Exception as exc:  # every other failure becomes a classified outcome too
            kind, message = _classify(exc)
            return _failure(started, kind, message)

    async def close(self) -> None:
        """Close every connection (requests in flight fail) and forget the pools."""
        loop = self._loop
        if loop is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(_Failure(ErrorKind.CONNECTION, "the sender was closed"))
        for task in self._dns_pending.values():
            task.cancel()
        connections = list(self._connections)
        if connections:
            self._all_closed = loop.create_future()
            for conn in connections:  # requests in flight fail now, none is retried
                conn._fail(_Failure(ErrorKind.CONNECTION, "the sender was closed"))
            with contextlib.suppress(TimeoutError):  # they close at once: this is a backstop
                await asyncio.wait_for(asyncio.shield(self._all_closed), 5.0)
        self._reset_state()
        self._loop = None

    # -- requests ------------------------------------------------------------------------------

    def _parse(self, url: str) -> _Target:
        target = _parse_url(url, self._policy)
        targets = self._targets
        if len(targets) >= TARGET_CACHE_SIZE:
            del targets[next(iter(targets))]
        targets[url] = target
        return target

    def _request(self, target: _Target, headers: Mapping[str, str], body: bytes) -> bytes:
        names = tuple(headers)
        plain = self._plans.get(names)
        if plain is None:
            plain = self._plan(names)
        if not plain:
            return self._request_with_framing(target, headers, body)
        block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        n = len(names)
        if block.count("\n") != n or block.count("\r") != n or "\x00" in block:
            raise _Failure(ErrorKind.PROTOCOL, _injection_message(headers))
        return f"{target.start}{block}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def _plan(self, names: tuple[str, ...]) -> bool:
        """Validate a set of header names; True when none of them is Host or framing."""
        for name in names:
            if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
                raise _Failure(ErrorKind.PROTOCOL, "refusing to send a header with an invalid name")
        plain = not any(name.lower() in _ROLES for name in names)
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        self._plans[names] = plain
        return plain

    def _request_with_framing(
        self, target: _Target, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        """The caller set Host (kept) or Content-Length / Transfer-Encoding (ours win)."""
        parts = [target.request_head]
        host_given = False
        for name, value in headers.items():
            role = _ROLES.get(name.lower())
            if role == _DROPPED:
                continue
            if role == _HOST:
                host_given = True
            parts.append(f"{name}: {value}\r\n")
        if not host_given:
            parts.insert(1, f"Host: {target.key[1]}\r\n")
        block = "".join(parts[1:])
        n = len(parts) - 1
        if block.count("\n") != n or block.count("\r") != n or "\x00" in block:
            raise _Failure(ErrorKind.PROTOCOL, _injection_message(headers))
        parts.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(parts).encode() + body

    # -- the pool ------------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or use from another event loop (the old one's sockets cannot be used)."""
        self._reset_state()
        self._loop = loop

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        stack = self._idle.get(key)
        while stack:
            conn = stack.pop()
            if not conn.closed:
                return conn
        return None

    async def _checkout(self, target: _Target, deadline: float, *, fresh: bool) -> _Connection:
        """A connection for `target`: a pooled one, a handed-over one or a new one."""
        async with asyncio.timeout_at(deadline):
            got = await self._acquire(target.key, fresh=fresh)
            if got is not None:
                return got
            gen = self._gen
            try:
                return await self._connect(target)
            except BaseException:
                if gen == self._gen:
                    self._free_slot()
                raise

    async def _acquire(self, key: tuple[str, str, int], *, fresh: bool) -> _Connection | None:
        """A connection (reused), or None: a slot is reserved for a new one."""
        if not fresh:
            conn = self._take_idle(key)
            if conn is not None:
                return conn
        if not self._live_waiter():
            if self._total < self._limit:
                self._total += 1
                return None
            if self._evict_idle():
                return None
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[_Connection | None] = loop.create_future()
        waiter = _Waiter(key, future, loop.time(), fresh)
        if fresh:
            self._waiters.appendleft(waiter)  # a retry goes first: it had its turn already
        else:
            self._waiters.append(waiter)
        by_key = self._key_waiters.get(key)
        if by_key is None:
            by_key = self._key_waiters[key] = collections.deque()
        if fresh:
            by_key.appendleft(waiter)
        else:
            by_key.append(waiter)
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                got = future.result()  # handed over just as we were cancelled: pass it on
                if got is None:
                    self._free_slot()
                else:
                    self._checkin(got)
            raise
        finally:
            self._trim(key)

    def _trim(self, key: tuple[str, str, int]) -> None:
        waiters = self._waiters
        while waiters and waiters[0].future.done():
            waiters.popleft()
        by_key = self._key_waiters.get(key)
        if by_key is not None:
            while by_key and by_key[0].future.done():
                by_key.popleft()
            if not by_key:
                del self._key_waiters[key]

    def _live_waiter(self) -> _Waiter | None:
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if not waiter.future.done():
                return waiter
            waiters.popleft()
        return None

    def _key_waiter(self, key: tuple[str, str, int]) -> _Waiter | None:
        by_key = self._key_waiters.get(key)
        if by_key is None:
            return None
        while by_key and by_key[0].future.done():
            by_key.popleft()
        for waiter in by_key:
            if not waiter.fresh and not waiter.future.done():
                return waiter
        return None

    def _evict_idle(self) -> bool:
        """Close the least recently used idle connection; its slot becomes the caller's."""
        oldest: _Connection | None = None
        for stack in self._idle.values():
            while stack and stack[0].closed:
                stack.pop(0)
            if stack and (oldest is None or stack[0].idle_since < oldest.idle_since):
                oldest = stack[0]
        if oldest is None:
            return False
        self._idle[oldest.key].pop(0)
        oldest.holds_slot = False  # the slot is transferred, not freed
        oldest.close()
        return True

    def _checkin(self, conn: _Connection) -> None:
        """A connection free for the next request: to a waiter, or into the idle pool."""
        loop = self._loop
        if conn.gen != self._gen or loop is None:
            conn.close()
            return
        first = self._live_waiter()
        if first is not None:
            if first.key == conn.key and not first.fresh:
                self._waiters.popleft()
                first.future.set_result(conn)
                return
            same = self._key_waiter(conn.key)
            if same is not None and loop.time() - first.since < FAIRNESS_WINDOW:
                same.future.set_result(conn)
                return
            self._waiters.popleft()
            conn.holds_slot = False  # hand its slot to the oldest waiter
            conn.close()
            first.future.set_result(None)
            return
        conn.idle_since = loop.time()
        stack = self._idle.get(conn.key)
        if stack is None:
            stack = self._idle[conn.key] = []
        stack.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _free_slot(self) -> None:
        waiter = self._live_waiter()
        if waiter is None:
            self._total -= 1
        else:
            self._waiters.popleft()
            waiter.future.set_result(None)

    def _drop(self, conn: _Connection) -> None:
        """`conn` is closing: it holds its slot no more."""
        if conn.holds_slot:
            conn.holds_slot = False
            if conn.gen == self._gen:
                self._free_slot()

    def _opened(self, conn: _Connection) -> None:
        self._connections.add(conn)

    def _lost(self, conn: _Connection) -> None:
        self._drop(conn)
        if conn.gen != self._gen:
            return
        self._connections.discard(conn)
        stack = self._idle.get(conn.key)
        if stack is not None and conn in stack:
            stack.remove(conn)
        closed = self._all_closed
        if not self._connections and closed is not None and not closed.done():
            closed.set_result(None)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = self._loop
        if loop is None:
            return
        horizon = loop.time() - self._keepalive
        remaining = 0
        for key, stack in list(self._idle.items()):
            expired = 0
            while expired < len(stack) and stack[expired].idle_since <= horizon:
                expired += 1
            doomed, stack[:expired] = stack[:expired], []
            for conn in doomed:
                conn.close()
            if stack:
                remaining += len(stack)
            else:
                del self._idle[key]
        if remaining:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    # -- deadlines -----------------------------------------------------------------------------
    # A timer per request (call_at, then cancel) costs more than the rest of the bookkeeping of
    # a request together; a set per tick of 50 ms and one timer ticking while any request is in
    # flight cost a set add and discard.

    def _arm(self, conn: _Connection, deadline: float) -> None:
        if self._ticker is None:
            loop = self._loop
            assert loop is not None
            now = int(loop.time() * TICKS_PER_SECOND)
            self._next_slot = now + 1
            self._ticker = loop.call_at(self._next_slot / TICKS_PER_SECOND, self._tick)
        slot = -int(-deadline * TICKS_PER_SECOND // 1)  # the first tick at or after the deadline
        if slot < self._next_slot:
            slot = self._next_slot  # already due: the next tick handles it
        conn.slot = slot
        bucket = self._deadlines.get(slot)
        if bucket is None:
            bucket = self._deadlines[slot] = set()
        bucket.add(conn)

    def _disarm(self, conn: _Connection) -> None:
        bucket = self._deadlines.get(conn.slot)
        if bucket is not None:
            bucket.discard(conn)
        conn.slot = 0

    def _tick(self) -> None:
        self._ticker = None
        loop = self._loop
        if loop is None:
            return
        current = int(loop.time() * TICKS_PER_SECOND)
        deadlines = self._deadlines
        for slot in [slot for slot in deadlines if slot <= current]:
            for conn in deadlines.pop(slot):
                conn.slot = 0
                conn.on_deadline()
        self._next_slot = current + 1
        if any(deadlines.values()):
            self._ticker = loop.call_at(self._next_slot / TICKS_PER_SECOND, self._tick)
        else:
            deadlines.clear()

    # -- connecting ----------------------------------------------------------------------------

    async def _connect(self, target: _Target) -> _Connection:
        loop = self._loop
        assert loop is not None
        addresses = target.pinned
        if addresses is None:
            addresses = await self._resolve(target.host)
        key = target.key
        tls: ssl.SSLContext | None = None
        if target.server_hostname is not None:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        last: OSError | None = None
        for index, address in enumerate(addresses):
            # with more addresses to try, one that does not answer gets a bounded attempt (the
            # request's deadline bounds the whole)
            cap = CONNECT_ATTEMPT_TIMEOUT if index < len(addresses) - 1 else None
            try:
                async with asyncio.timeout(cap):
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, key),
                        address,
                        target.port,
                        ssl=tls,
                        server_hostname=target.server_hostname,
                    )
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise _Failure(ErrorKind.TLS, _tls_message(target, exc)) from None
            except TimeoutError:  # this attempt's cap (the deadline arrives as a cancellation)
                last = TimeoutError(f"no answer from {address} within {cap:g}s")
                continue
            except OSError as exc:
                last = exc
                continue
            if conn.gen != self._gen:
                conn.abort()
                raise _Failure(ErrorKind.CONNECTION, "the sender was closed")
            if conn.closed:  # lost before we got it
                last = ConnectionResetError("the connection closed as soon as it opened")
                continue
            conn.holds_slot = True
            return conn
        strerror = (last.strerror or str(last)) if last is not None else "no address"
        raise _Failure(
            ErrorKind.CONNECTION, f"cannot connect to {target.host}:{target.port} ({strerror})"
        )

    async def _resolve(self, host: str) -> tuple[str, ...]:
        loop = self._loop
        assert loop is not None
        entry = self._dns.get(host)
        if entry is not None and entry[0] > loop.time():
            result = entry[1]
        else:
            task = self._dns_pending.get(host)
            if task is None:
                task = loop.create_task(self._lookup(host))
                self._dns_pending[host] = task
                task.add_done_callback(lambda t: self._resolved(host, t))
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and (current is None or not current.cancelling()):
                    raise _Failure(ErrorKind.CONNECTION, "the sender was closed") from None
                raise
        if isinstance(result, str):
            raise _Failure(ErrorKind.BLOCKED, result)
        return result

    def _resolved(self, host: str, task: asyncio.Task[tuple[str, ...] | str]) -> None:
        if self._dns_pending.get(host) is task:
            del self._dns_pending[host]
        if task.cancelled() or task.exception() is not None:
            return  # failures are not cached (the exception is retrieved by the awaiters)
        loop = self._loop
        if loop is None:
            return
        cache = self._dns
        if len(cache) >= DNS_CACHE_SIZE:
            now = loop.time()
            for name in [n for n, (expires, _) in cache.items() if expires <= now]:
                del cache[name]
            while len(cache) >= DNS_CACHE_SIZE:
                del cache[next(iter(cache))]
        cache[host] = (loop.time() + DNS_TTL, task.result())

    async def _lookup(self, host: str) -> tuple[str, ...] | str:
        """The addresses of `host` the policy allows, or the refusal message when none is."""
        loop = self._loop
        assert loop is not None
        try:
            infos = await loop.getaddrinfo(
                host, None, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except socket.gaierror:
            raise _Failure(ErrorKind.DNS, f"cannot resolve {host}") from None
        found: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if len(sockaddr) == 4 and sockaddr[3]:
                address = f"{address}%{sockaddr[3]}"  # an IPv6 scope
            if address not in found:
                found.append(address)
        allowed = tuple(a for a in found if self._policy.is_allowed(_ip(a)))
        if allowed:
            return allowed
        refused = ", ".join(sorted({a.partition("%")[0] for a in found}))
        return (
            f"{host} resolves only to refused addresses ({refused}); "
            "allow them with HOOKD_ALLOW_PRIVATE_NETWORKS"
        )


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.partition("%")[0])


def _parse_url(url: str, policy: AddressPolicy) -> _Target:
    def invalid(problem: str) -> _Failure:
        return _Failure(ErrorKind.BLOCKED, f"invalid URL: {problem}")

    if _URL_FORBIDDEN.search(url):
        raise invalid("the URL contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise invalid(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise invalid(f"scheme must be http or https, not {scheme or 'missing'!r}")
    if not host:
        raise invalid("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise invalid("credentials in the URL are not allowed")
    default_port = 443 if scheme == "https" else 80
    if port is None:
        port = default_port
    elif port == 0:
        raise invalid("port 0 is not a valid destination")
    literal = literal_address(host)
    pinned: tuple[str, ...] | None = None
    blocked: str | None = None
    if literal is not None:
        host = str(literal)
        pinned = (host,)
        try:
            policy.check(literal)
        except errors.DestinationBlocked as exc:
            blocked = str(exc)
        authority = f"[{host}]" if literal.version == 6 else host
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise invalid("the host name is not valid") from None
        authority = host
    if port != default_port:
        authority = f"{authority}:{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path = f"{path}?{quote(parts.query, safe=_QUERY_SAFE)}"
    return _Target(
        key=(scheme, authority, port),
        host=host,
        port=port,
        request_head=f"POST {path} HTTP/1.1\r\n",
        pinned=pinned,
        blocked=blocked,
        server_hostname=host if scheme == "https" else None,
    )


def _injection_message(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if any(c in value for c in "\r\n\x00"):
            return f"refusing to send header {name}: its value contains CR, LF or NUL"
    return "refusing to send a header with CR, LF or NUL"  # pragma: no cover


def _tls_message(target: _Target, exc: BaseException) -> str:
    detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    return f"TLS with {target.host}:{target.port} failed ({detail})"


def _failure(started: float, kind: ErrorKind, message: str) -> Outcome:
    return Outcome(
        duration_ms=(time.perf_counter() - started) * 1000,
        error_kind=kind,
        error=f"{kind.value}: {message}"[:1000],
    )


def _classify(exc: Exception) -> tuple[ErrorKind, str]:
    """What `classify_exception` would say for the same failure seen through aiohttp."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ErrorKind.TLS, str(exc)
    if isinstance(exc, socket.gaierror):
        return ErrorKind.DNS, "cannot resolve the host"
    if isinstance(exc, OSError):
        return ErrorKind.CONNECTION, str(exc) or type(exc).__name__
    return ErrorKind.PROTOCOL, f"{type(exc).__name__}: {exc}"
