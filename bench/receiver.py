"""A fast webhook receiver for benchmarks: a raw `asyncio.Protocol` speaking just enough HTTP/1.1.

    python bench/receiver.py --port 0          # prints "LISTENING <port>" once it accepts
    python bench/receiver.py --port 0 --delay 1.0      # answers every POST after 1 s
    python bench/receiver.py --port 0 --record         # + arrival time per `"bid":"…"` token

It answers every request with `204 No Content`, keeps connections alive (HTTP/1.1 default,
`Connection: close` honoured), reads bodies framed by `Content-Length` and handles pipelined
requests. Chunked request bodies are not supported (hookd never sends them): such a request gets
`501` and the connection is closed. It is an HTTP peer for measuring the *sender*, not a server.

Counting: every POST counts as one request. `GET /count` answers `{"count": N}` (not counted);
`GET /stats` adds the connections accepted, open now, and the most requests held at once (with
`--delay`); on SIGTERM or SIGINT the receiver prints `COUNT <n>` on stdout and exits. uvloop is
used when it can be imported (`--no-uvloop` to turn it off).

`--delay S` holds every POST's answer S seconds (a slow receiver: a timer per request, no task),
in order per connection. `--record` notes the arrival time (`time.time()`, the wall clock other
processes on this machine share) of every POST whose body holds a `"bid":"<token>"` member;
`GET /arrivals` answers `[[token, time], …]` and forgets them (so poll it to drain).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import cast

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

RESPONSE_204 = b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n"
RESPONSE_204_CLOSE = b"HTTP/1.1 204 No Content\r\nServer: bench\r\nConnection: close\r\n\r\n"
RESPONSE_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
RESPONSE_501 = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


BID = b'"bid":"'


class Stats:
    __slots__ = (
        "arrivals",
        "connections",
        "delay",
        "held",
        "max_held",
        "open",
        "record",
        "requests",
    )

    def __init__(self, *, delay: float = 0.0, record: bool = False) -> None:
        self.requests = 0
        self.connections = 0
        self.open = 0
        self.held = 0  # answers waiting for their delay
        self.max_held = 0
        self.delay = delay
        self.record = record
        self.arrivals: list[tuple[str, float]] = []

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "count": self.requests,
                "connections": self.connections,
                "open": self.open,
                "held": self.held,
                "max_held": self.max_held,
            }
        ).encode()


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("_buffer", "_loop", "_release_at", "_stats", "_transport")

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._release_at = 0.0  # with --delay: when this connection's last answer goes out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._stats.connections += 1
        self._stats.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._stats.open -= 1

    def _answer_later(self, response: bytes, close: bool) -> None:
        """With --delay: send `response` `delay` seconds from now, after earlier answers."""
        stats = self._stats
        stats.held += 1
        stats.max_held = max(stats.max_held, stats.held)
        at = max(self._loop.time() + stats.delay, self._release_at)
        self._release_at = at
        self._loop.call_at(at, self._release, response, close)

    def _release(self, response: bytes, close: bool) -> None:
        self._stats.held -= 1
        transport = self._transport
        if transport is None:
            return
        transport.write(response)
        if close:
            self._close([])

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        transport = self._transport
        out: list[bytes] = []
        while transport is not None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    out.append(RESPONSE_400)
                    self._close(out)
                    transport = None
                break
            head = bytes(buffer[:end]).lower()
            request_line, _, header_block = head.partition(b"\r\n")
            method, _, rest = request_line.partition(b" ")
            target = rest.partition(b" ")[0]
            length = 0
            close = False
            for line in header_block.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        length = -1
                elif name == b"connection":
                    close = b"close" in value
                elif name == b"transfer-encoding":
                    out.append(RESPONSE_501)
                    self._close(out)
                    transport = None
                    break
            if transport is None:
                break
            if not 0 <= length <= MAX_BODY:
                out.append(RESPONSE_400)
                self._close(out)
                transport = None
                break
            total = end + 4 + length
            if len(buffer) < total:
                break  # the rest of the body is still on its way
            stats = self._stats
            if stats.record and method == b"post":
                start = buffer.find(BID, end + 4, total)
                if start >= 0:
                    start += len(BID)
                    stop = buffer.find(b'"', start, total)
                    if stop > start:
                        stats.arrivals.append((buffer[start:stop].decode(), time.time()))
            del buffer[:total]
            if method == b"get" and target in (b"/count", b"/stats", b"/arrivals"):
                if target == b"/count":
                    body = b'{"count":%d}' % stats.requests
                elif target == b"/stats":
                    body = stats.as_json()
                else:
                    body = json.dumps(stats.arrivals).encode()
                    stats.arrivals = []
                out.append(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            elif stats.delay > 0:
                stats.requests += 1
                self._answer_later(RESPONSE_204_CLOSE if close else RESPONSE_204, close)
                if close:
                    buffer.clear()
                    break  # the delayed answer closes the connection
                continue
            else:
                stats.requests += 1
                out.append(RESPONSE_204_CLOSE if close else RESPONSE_204)
            if close:
                self._close(out)
                transport = None
        if out and transport is not None:
            transport.write(b"".join(out))

    def _close(self, out: list[bytes]) -> None:
        if self._transport is not None:
            self._transport.write(b"".join(out))
            out.clear()
            self._transport.close()
            self._transport = None
        self._buffer.clear()


async def serve(
    host: str, port: int, *, ready: bool = True, delay: float = 0.0, record: bool = False
) -> int:
    loop = asyncio.get_running_loop()
    stats = Stats(delay=delay, record=record)
    server = await loop.create_server(
        lambda: HttpProtocol(stats), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    if ready:
        print(f"LISTENING {bound}", flush=True)
    async with server:
        await stop.wait()
    print(f"COUNT {stats.requests}", flush=True)
    return stats.requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each answer")
    parser.add_argument(
        "--record", action="store_true", help='note arrival times of "bid" tokens (GET /arrivals)'
    )
    args = parser.parse_args(argv)
    if not 0 <= args.delay <= 60:
        parser.error("--delay must be between 0 and 60 seconds")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the bench receiver listens on loopback only")
    runner = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    print(f"LOOP {'uvloop' if runner is not asyncio.run else 'asyncio'}", file=sys.stderr)
    with contextlib.suppress(ValueError, OSError):  # many slow connections: raise the fd limit
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runner(serve(args.host, args.port, delay=args.delay, record=args.record))


if __name__ == "__main__":
    main()
