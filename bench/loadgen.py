"""A load generator for hookd's publish routes: raw HTTP/1.1 keep-alive connections, one process.

    python bench/loadgen.py --port 8000 --api-key hk_… --kind single --connections 64 \\
        --count 100000 --seconds 10                       # closed loop: as fast as it answers
    python bench/loadgen.py … --rate 2000 --accepted-out accepted.json   # open loop, 2,000/s

It connects first, prints `READY`, waits for a line on stdin (so several generator processes start
together), runs, and prints one JSON line with the outcome. Each connection carries one request at
a time (no pipelining), like an ordinary HTTP client. It speaks just enough HTTP: responses framed
by `Content-Length` (or chunked), which is what uvicorn sends.

Bodies: `--kind single` is `POST /v1/events` with one event, `--kind batch` is
`POST /v1/events/batch` with `--batch-size` events (or the same bodies to another `--path`, for a
baseline server). Every event's payload starts with `"bid":"<prefix><n>"`, a token the receiver
can note (bench/receiver.py --record); `--accepted-out FILE` writes `{token: accepted_at}` with
the wall-clock time each event's request was answered 2xx.

Bounded by `--count` (events) and `--seconds`. The open-loop mode (`--rate`, events/s) schedules
request i at start + i/rate; a request that finds no free connection waits, and its latency is
counted from when it was due (no coordinated omission). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any, cast

import orjson

MAX_HEAD = 64 * 1024


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: `request()` sends, the future gets the status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection lost"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        if self.transport is None:
            raise ConnectionError("not connected")
        self._waiter = self._loop.create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._fail("response head too large")
            return
        head = bytes(buffer[:end]).lower()
        status_line, _, header_block = head.partition(b"\r\n")
        length = -1
        chunked = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
        if chunked:
            stop = buffer.find(b"0\r\n\r\n", end + 4)
            if stop < 0:
                return
            total = stop + 5
        else:
            total = end + 4 + max(length, 0)
            if len(buffer) < total:
                return
        del buffer[:total]
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            self._fail("bad status line")
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def _fail(self, why: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()


class Bodies:
    """Request bytes for event n (a single event) or events n.. (a batch)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        pad = max(0, args.payload_bytes - 120)
        # the token first, so a receiver finds it early; then an order-like body
        self._after = (
            b'","order_id":"ord_%d","status":"filled","total":8997,"currency":"EUR","note":"'
            + b"x" * pad
            + b'"}'
        )
        self._type = orjson.dumps(args.event_type)
        self._head = (
            f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
            f"Content-Type: application/json\r\n"
            + (f"Authorization: Bearer {args.api_key}\r\n" if args.api_key else "")
            + "Content-Length: "
        ).encode()
        self.per_request = 1 if args.kind == "single" else args.batch_size

    def token(self, n: int) -> str:
        return f"{self.args.token_prefix}{n}"

    def _event(self, n: int) -> bytes:
        return (
            b'{"type":'
            + self._type
            + b',"payload":{"bid":"'
            + self.token(n).encode()
            + bytes(self._after % n)
            + b"}"
        )

    def request(self, first: int, count: int) -> bytes:
        if self.args.kind == "single":
            body = self._event(first)
        else:
            body = b'{"events":[' + b",".join(self._event(n) for n in range(first, first + count))
            body += b"]}"
        return self._head + str(len(body)).encode() + b"\r\n\r\n" + body


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    bodies = Bodies(args)
    conns: list[Connection] = []
    for _ in range(args.connections):
        _transport, proto = await loop.create_connection(Connection, "127.0.0.1", args.port)
        conns.append(proto)
    print("READY", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)

    per = bodies.per_request
    requests = max(1, args.count // per)
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    accepted: dict[str, float] = {}
    ok_events = 0
    failed = 0
    next_request = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    deadline = started + args.seconds
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    record = args.accepted_out is not None

    async def send(conn: Connection, i: int, due: float) -> None:
        nonlocal ok_events, failed
        data = bodies.request(i * per, per)
        try:
            status = await asyncio.wait_for(conn.request(data), args.timeout)
        except (ConnectionError, TimeoutError, OSError):
            failed += 1
            statuses["error"] = statuses.get("error", 0) + 1
            return
        done_at = time.perf_counter()
        latencies.append((done_at - due) * 1000)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if 200 <= status < 300:
            ok_events += per
            if record:
                now = time.time()
                for n in range(i * per, i * per + per):
                    accepted[bodies.token(n)] = now
        else:
            failed += 1

    async def closed_loop(conn: Connection) -> None:
        nonlocal next_request
        while next_request < requests and time.perf_counter() < deadline:
            i = next_request
            next_request += 1
            await send(conn, i, time.perf_counter())
            if conn.transport is None:
                return

    async def open_loop(conn: Connection) -> None:
        while True:
            i, due = await queue.get()
            if i < 0:
                return
            await send(conn, i, due)
            if conn.transport is None:
                return

    lag_max = 0.0
    if args.rate:
        interval = per / args.rate
        workers = [asyncio.create_task(open_loop(c)) for c in conns]
        for i in range(requests):
            due = started + i * interval
            now = time.perf_counter()
            if now >= deadline:
                break
            if due > now:
                await asyncio.sleep(due - now)
            lag_max = max(lag_max, time.perf_counter() - due)
            queue.put_nowait((i, due))
            next_request = i + 1
        for _ in workers:
            queue.put_nowait((-1, 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*workers), args.timeout + 5)
    else:
        await asyncio.gather(*(closed_loop(c) for c in conns))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    if record:
        with open(args.accepted_out, "wb") as out:
            out.write(orjson.dumps(accepted))
    return {
        "kind": args.kind,
        "events_per_request": per,
        "requests_sent": next_request,
        "requests_failed": failed,
        "events_ok": ok_events,
        "seconds": round(elapsed, 4),
        "events_per_second": round(ok_events / elapsed, 1) if elapsed > 0 else 0.0,
        "statuses": statuses,
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies) if latencies else None,
        },
        "offered_rate": args.rate,
        "schedule_lag_max_ms": round(lag_max * 1000, 1),
        "hit_time_cap": next_request < requests,
        "cpu_seconds": round(cpu, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--api-key", default="", help="sent as Authorization: Bearer")
    parser.add_argument("--kind", choices=["single", "batch"], default="single")
    parser.add_argument("--path", default=None, help="default: hookd's route for --kind")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch request")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--count", type=int, default=10_000, help="events at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="time cap")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (0: closed loop)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--payload-bytes", type=int, default=400)
    parser.add_argument("--event-type", default="order.filled")
    parser.add_argument("--token-prefix", default="t")
    parser.add_argument("--accepted-out", default=None, help="write {token: accepted_at} here")
    args = parser.parse_args(argv)
    if args.path is None:
        args.path = "/v1/events" if args.kind == "single" else "/v1/events/batch"
    if args.count <= 0 or args.connections <= 0 or args.seconds <= 0:
        parser.error("--count, --connections and --seconds must be positive")
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    result = runner(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
