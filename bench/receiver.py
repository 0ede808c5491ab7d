"""A fast webhook receiver for benchmarks: a raw `asyncio.Protocol` speaking just enough HTTP/1.1.

    python bench/receiver.py --port 0          # prints "LISTENING <port>" once it accepts

It answers every request with `204 No Content`, keeps connections alive (HTTP/1.1 default,
`Connection: close` honoured), reads bodies framed by `Content-Length` and handles pipelined
requests. Chunked request bodies are not supported (hookd never sends them): such a request gets
`501` and the connection is closed. It is an HTTP peer for measuring the *sender*, not a server.

Counting: every POST counts as one request. `GET /count` answers `{"count": N}` (not counted);
on SIGTERM or SIGINT the receiver prints `COUNT <n>` on stdout and exits. uvloop is used when it
can be imported (`--no-uvloop` to turn it off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import cast

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

RESPONSE_204 = b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n"
RESPONSE_204_CLOSE = b"HTTP/1.1 204 No Content\r\nServer: bench\r\nConnection: close\r\n\r\n"
RESPONSE_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
RESPONSE_501 = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Stats:
    __slots__ = ("connections", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("_buffer", "_stats", "_transport")

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

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
                    transport = self._close(out)
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
                    transport = self._close(out)
                    break
            if transport is None:
                break
            if not 0 <= length <= MAX_BODY:
                out.append(RESPONSE_400)
                transport = self._close(out)
                break
            total = end + 4 + length
            if len(buffer) < total:
                break  # the rest of the body is still on its way
            del buffer[:total]
            if method == b"get" and target == b"/count":
                body = b'{"count":%d}' % self._stats.requests
                out.append(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                self._stats.requests += 1
                out.append(RESPONSE_204_CLOSE if close else RESPONSE_204)
            if close:
                transport = self._close(out)
        if out and transport is not None:
            transport.write(b"".join(out))

    def _close(self, out: list[bytes]) -> None:
        if self._transport is not None:
            self._transport.write(b"".join(out))
            out.clear()
            self._transport.close()
            self._transport = None
        self._buffer.clear()


async def serve(host: str, port: int, *, ready: bool = True) -> int:
    loop = asyncio.get_running_loop()
    stats = Stats()
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
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the bench receiver listens on loopback only")
    runner = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    print(f"LOOP {'uvloop' if runner is not asyncio.run else 'asyncio'}", file=sys.stderr)
    runner(serve(args.host, args.port))


if __name__ == "__main__":
    main()
