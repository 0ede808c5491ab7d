"""CPU time of the batch publish route, stage by stage, in process (no server, no sockets).

    PYTHONPATH=src python bench/batch_profile.py                  # 3 rounds of 50 batches of 1,000
    PYTHONPATH=src python bench/batch_profile.py --batches 100 --rounds 5
    PYTHONPATH=src python bench/batch_profile.py --profile        # + cProfile of the ASGI route
    PYTHONPATH=/elsewhere/src python bench/batch_profile.py       # another commit's hookd

An `Engine` on a fresh SQLite file (synchronous FULL, as `hookd serve`) with one paused endpoint
subscribed to `order.*` (each event makes one parked delivery), and bodies shaped as
bench/loadgen.py's (`order.filled`, a ~400-byte payload, no idempotency key). The garbage
collector is tuned as in a serving process (`hookd.server.tune_gc`).

Each stage of the route is timed on its own with `time.process_time` (the CPU of every thread of
the process, so the SQLite writer thread's share counts) over N batches, then the whole route
through the ASGI app (`create_app`: the body-size guard, `FastPublish`, the answer's JSON) as
uvicorn would call it, the body in 64 KiB messages. Figures are CPU ms per batch: the median of
the rounds, and each round's. Machines shared with other work inflate CPU time less than wall
time, but they do: compare commits by alternating runs.

Stages a version of hookd lacks (`plain_batch`, `Engine._batch_events`, before they existed)
are measured the way that version did the work, so one script compares commits.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from hookd import crypto, server
from hookd.api import create_app, schemas, serialize
from hookd.api.routes import events as routes
from hookd.config import Settings
from hookd.domain.models import Event, Secret
from hookd.engine import Engine

CHUNK = 65536
TENANT = "default"


def body(first: int, count: int, payload_bytes: int = 400) -> bytes:
    """A batch request's body, as bench/loadgen.py makes it."""
    pad = b"x" * max(0, payload_bytes - 120)
    items = [
        b'{"type":"order.filled","payload":{"bid":"b%d","order_id":"ord_%d","status":"filled",'
        b'"total":8997,"currency":"EUR","note":"%s"}}' % (n, n, pad)
        for n in range(first, first + count)
    ]
    return b'{"events":[' + b",".join(items) + b"]}"


async def asgi_post(app: Any, path: str, key: str, content: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI app, the body in 64 KiB messages (as uvicorn hands it over)."""
    chunks = [content[i : i + CHUNK] for i in range(0, len(content), CHUNK)] or [b""]
    messages = iter(
        [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
    )
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(content)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is None:
            await asyncio.sleep(3600)  # as a client that sent everything and waits
            return {"type": "http.disconnect"}
        return message

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(out)


class Bench:
    """The engine, the app and a supply of fresh bodies; `stage` times a step."""

    def __init__(self, engine: Engine, app: Any, key: str, size: int, batches: int) -> None:
        self.engine = engine
        self.app = app
        self.key = key
        self.size = size
        self.batches = batches
        self.serial = 0
        self.cpu: dict[str, list[float]] = {}

    def bodies(self) -> list[bytes]:
        """Fresh bodies for one stage (made before it is timed)."""
        made = []
        for _ in range(self.batches):
            made.append(body(self.serial, self.size))
            self.serial += self.size
        return made

    async def stage(self, name: str, step: Callable[[], Any]) -> Any:
        """`step()` (sync or async) `batches` times: CPU ms per call; its last result."""
        result = None
        start = time.process_time()
        for _ in range(self.batches):
            value = step()
            result = await value if isinstance(value, Awaitable) else value
        self.cpu.setdefault(name, []).append((time.process_time() - start) * 1000 / self.batches)
        return result

    def events(self, raw: bytes) -> list[Event]:
        """The records the engine would store for a body (outside any timing)."""
        data = orjson.loads(raw)
        plain = getattr(routes, "plain_batch", None)
        found = None if plain is None else plain(data)
        if found is not None and hasattr(self.engine, "_batch_events"):
            events: list[Event] = self.engine._batch_events(TENANT, found[1], now=time.time())[0]
            return events
        now = time.time()
        model = schemas.EventBatch.model_validate(data)
        return [self.engine.make_event(TENANT, i.type, i.payload, now=now) for i in model.events]

    async def round(self, api_key: Any) -> None:
        engine = self.engine
        raw = self.bodies()[0]
        data = orjson.loads(raw)
        model = schemas.EventBatch.model_validate(data)
        await self.stage("parse JSON (orjson.loads)", lambda: orjson.loads(raw))
        await self.stage(
            "validate: EventBatch.model_validate", lambda: schemas.EventBatch.model_validate(data)
        )
        plain = getattr(routes, "plain_batch", None)
        if plain is not None:
            await self.stage("validate: plain_batch", lambda: plain(data))
        found = None if plain is None else plain(data)
        if found is not None and hasattr(engine, "_batch_events"):
            items = found[1]
            await self.stage(
                "events: Engine._batch_events",
                lambda: engine._batch_events(TENANT, items, now=time.time()),
            )
        else:

            def make_all() -> None:
                now = time.time()
                for item in model.events:
                    engine.make_event(
                        TENANT,
                        item.type,
                        item.payload,
                        idempotency_key=item.idempotency_key,
                        priority=item.priority,
                        now=now,
                    )

            await self.stage("events: make_event x N", make_all)
        pairs = [(item.type, item.payload) for item in model.events]
        await self.stage(
            "event types: Engine._type_problems",
            lambda: engine._type_problems(TENANT, pairs, lambda i: ""),
        )
        batches = iter([self.events(b) for b in self.bodies()])
        results = await self.stage(
            "store.publish (fan-out, INSERT, COMMIT)",
            lambda: engine.store.publish(next(batches), idempotent_since=0.0),
        )
        await self.stage(
            "answer: event_accepted_fields + orjson.dumps",
            lambda: orjson.dumps({"data": [serialize.event_accepted_fields(r) for r in results]}),
        )
        bodies: Iterator[bytes] = iter(self.bodies())
        await self.stage(
            "publish_many (parse+validate+engine+store)",
            lambda: routes.publish_many(engine, api_key, parsed(next(bodies))),
        )
        bodies = iter(self.bodies())

        async def post() -> None:
            status, answer = await asgi_post(self.app, routes.BATCH_PATH, self.key, next(bodies))
            assert status == 202, (status, answer[:300])

        await self.stage("ASGI app: the whole route", post)

    async def profile(self, top: int) -> None:
        bodies = self.bodies()
        prof = cProfile.Profile()
        prof.enable()
        for raw in bodies:
            await asgi_post(self.app, routes.BATCH_PATH, self.key, raw)
        prof.disable()
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)

    def report(self, rounds: int) -> None:
        width = max(len(name) for name in self.cpu)
        print(
            f"CPU ms per batch of {self.size:,} (median of {rounds} rounds of "
            f"{self.batches} batches; each round's in brackets)"
        )
        for name, values in self.cpu.items():
            each = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<{width}}  {statistics.median(values):6.2f}   [{each}]")


def parsed(raw: bytes) -> Any:
    """The body as the fast path reads it."""
    data = orjson.loads(raw)
    plain = getattr(routes, "plain_batch", None)
    found = None if plain is None else plain(data)
    return found or schemas.EventBatch.model_validate(data)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hookd-batch-") as tmp:
        settings = Settings(
            db_path=Path(tmp) / "hookd.db",
            secret_key=Secret(crypto.generate_key()),
            rate_limit_per_key=None,
            rate_limit_per_ip=None,
        )
        async with Engine(settings) as engine:
            endpoint, _ = await engine.create_endpoint(
                TENANT, url="https://example.com/hook", event_types=["order.*"]
            )
            await engine.pause_endpoint(TENANT, endpoint.id)
            _, key = await engine.create_api_key(None, name="bench")
            app = create_app(engine, manage_engine=False)
            api_key = await engine.authenticate(key)
            bench = Bench(engine, app, key, args.size, args.batches)
            for raw in bench.bodies()[:3]:  # warm up: caches, prepared statements
                status, _ = await asgi_post(app, routes.BATCH_PATH, key, raw)
                assert status == 202, status
            server.tune_gc()
            for _ in range(args.rounds):
                await bench.round(api_key)
            if args.profile:
                await bench.profile(args.top)
    bench.report(args.rounds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="batches per stage and round")
    parser.add_argument("--size", type=int, default=1000, help="events per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the ASGI route after")
    parser.add_argument("--top", type=int, default=25, help="functions the profile lists")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
