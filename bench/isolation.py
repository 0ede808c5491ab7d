"""Isolation benchmark: one bad endpoint must not slow the others down (issue 5).

    PYTHONPATH=src python bench/isolation.py             # A: 10,000 deliveries
    PYTHONPATH=src python bench/isolation.py --quick     # A: 2,000, a smoke run

Endpoint A is a fast receiver (bench/receiver.py, a child process). Phase `solo`: A's N
pre-published deliveries drained by hookd's worker, alone. Phase `mixed`: the same N to A, with
B (a receiver that never answers: every request waits for the endpoint's timeout) and C (answers
every request `500`) holding backlogs of their own, published interleaved with A's so all are
due together. The figure is A's deliveries/s in each phase, and their ratio (issue 5's target:
mixed >= 0.9 x solo). B and C run in child processes too (aiohttp), so their own CPU is not
the worker's. Each phase uses a fresh SQLite database; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:  # so it also runs without PYTHONPATH=src
    sys.path.insert(0, str(ROOT / "src"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import e2e  # noqa: E402
from hookd import crypto  # noqa: E402
from hookd.config import Settings, WorkerSettings, parse_networks  # noqa: E402
from hookd.domain.models import DEFAULT_TENANT, Secret  # noqa: E402
from hookd.engine import Engine  # noqa: E402

T = DEFAULT_TENANT
POLL = 0.02


# the bad receivers ------------------------------------------------------------------------------
def serve(mode: str) -> None:
    """`--serve hang|500`: an aiohttp receiver that never answers, or always answers 500."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if mode == "hang":
            await asyncio.sleep(3600)
        return web.Response(status=500)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class BadReceiver:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = e2e._readline(self.proc.stdout, 15.0)
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the {self.mode} receiver did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# phases -----------------------------------------------------------------------------------------
def settings(db: Path, args: argparse.Namespace) -> Settings:
    return Settings(
        db_path=db,
        secret_key=Secret(crypto.generate_key()),
        allow_private_networks=parse_networks("127.0.0.0/8"),
        worker=WorkerSettings(concurrency=args.concurrency, batch_size=args.batch_size),
    )


async def phase(
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    fast: e2e.Receiver,
    bad: dict[str, BadReceiver],
    *,
    events: int | None = None,
) -> dict[str, Any]:
    if events is not None:
        args = argparse.Namespace(**{**vars(args), "events": events})
    db = workdir / f"{name}.db"
    config = settings(db, args)
    others = args.others if bad else 0
    async with Engine(config, run_worker=False) as engine:
        a, _ = await engine.create_endpoint(T, url=fast.url, event_types=["a.*"])
        for label, receiver in bad.items():
            await engine.create_endpoint(
                T, url=receiver.url, event_types=[f"{label}.*"], timeout=args.bad_timeout
            )
        published = 0
        while published < args.events:
            batch = []
            for i in range(published, min(args.events, published + 500)):
                batch.append(engine.make_event(T, "a.tick", e2e.make_payload(i, 400)))
                for label in bad:  # interleaved: B's and C's are due as early as A's
                    if i * others // args.events != (i + 1) * others // args.events:
                        batch.append(engine.make_event(T, f"{label}.tick", {"i": i}))
            await engine.store.publish(batch)
            published = min(args.events, published + 500)
    poll = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

    def a_delivered() -> int:
        row = poll.execute(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = ? AND status = 'delivered'",
            (a.id,),
        ).fetchone()
        return int(row[0])

    before = await fast.count()
    engine = Engine(config)
    started = time.perf_counter()
    await engine.open()
    try:
        while True:
            received = await fast.count() - before
            elapsed = time.perf_counter() - started
            if received >= args.events and await asyncio.to_thread(a_delivered) >= args.events:
                break
            if elapsed > args.cap:
                break
            await asyncio.sleep(POLL)
        elapsed = time.perf_counter() - started
    finally:
        await engine.close()
    done = a_delivered()
    by_endpoint = {
        row[0]: row[1]
        for row in poll.execute(
            "SELECT e.url, count(a.id) FROM endpoints e LEFT JOIN attempts a "
            "ON a.endpoint_id = e.id GROUP BY e.url"
        )
    }
    poll.close()
    return {
        "a_delivered": done,
        "seconds": round(elapsed, 3),
        "a_per_second": round(done / elapsed, 1),
        "capped": done < args.events,
        "attempts": {label: by_endpoint.get(r.url, 0) for label, r in {"A": fast, **bad}.items()},
        "backlog_b_c_each": others,
    }


def markdown(results: dict[str, Any]) -> str:
    solo, mixed, after = results["solo"], results["mixed"], results["solo_after"]
    lines = [
        f"# hookd isolation benchmark — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"{results['machine']}; SQLite; worker concurrency {results['config']['concurrency']}, "
        f"per-endpoint max in flight {results['config']['endpoint_max_in_flight']} (default); "
        f"B and C time out after {results['config']['bad_timeout']} s / answer 500.",
        "",
        "| phase | A deliveries | seconds | A deliveries/s | attempts A / B / C |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in (("A alone", solo), ("A beside B and C", mixed), ("A alone again", after)):
        att = r["attempts"]
        shown = " / ".join(str(att.get(k, "-")) for k in ("A", "B", "C"))
        lines.append(
            f"| {name} | {r['a_delivered']} | {r['seconds']} | {r['a_per_second']} | {shown} |"
        )
    lines += [
        "",
        f"**A with B and C / A alone (mean of both solo runs): {results['ratio']:.2f}** "
        "(target >= 0.90). "
        f"B and C each had {mixed['backlog_b_c_each']} deliveries waiting, interleaved with A's.",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fast = e2e.Receiver(uvloop=True)
    bad = {"B": BadReceiver("hang"), "C": BadReceiver("500")}
    fast.start()
    for receiver in bad.values():
        receiver.start()
    try:
        with tempfile.TemporaryDirectory(prefix="hookd-isolation-") as tmp:
            e2e.step("warm-up (discarded)")
            await phase("warmup", args, Path(tmp), fast, {}, events=min(args.events, 1000))
            e2e.step("phase solo: A alone")
            solo = await phase("solo", args, Path(tmp), fast, {})
            e2e.step(f"  {solo['a_per_second']} deliveries/s; phase mixed: A beside B and C")
            mixed = await phase("mixed", args, Path(tmp), fast, bad)
            e2e.step(f"  {mixed['a_per_second']} deliveries/s; phase solo again")
            solo_after = await phase("solo_after", args, Path(tmp), fast, {})
            e2e.step(f"  {solo_after['a_per_second']} deliveries/s")
    finally:
        await fast.aclose()
        fast.stop()
        for receiver in bad.values():
            receiver.stop()
    return {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/isolation.py", *sys.argv[1:]]),
        "machine": f"{platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}",
        "config": {
            "events": args.events,
            "others": args.others,
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
            "bad_timeout": args.bad_timeout,
            "endpoint_max_in_flight": WorkerSettings().endpoint_max_in_flight,
        },
        "solo": solo,
        "mixed": mixed,
        "solo_after": solo_after,
        # the solo figure: the mean of the runs before and after (their spread shows the noise)
        "ratio": mixed["a_per_second"] / ((solo["a_per_second"] + solo_after["a_per_second"]) / 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hookd isolation benchmark (issue 5)")
    parser.add_argument("--serve", choices=["hang", "500"], help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=None, help="A's deliveries (10,000)")
    parser.add_argument(
        "--others", type=int, default=None, help="B's and C's backlog each (default: events/5)"
    )
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--bad-timeout", type=float, default=5.0, help="B's and C's timeout")
    parser.add_argument("--cap", type=float, default=120.0, help="time cap per phase, seconds")
    parser.add_argument("--quick", action="store_true", help="A: 2,000 deliveries")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.events is None:
        args.events = 2_000 if args.quick else 10_000
    if args.others is None:
        args.others = args.events // 5
    results = asyncio.run(run(args))
    text = markdown(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = args.out / f"isolation-{stamp}{'-quick' if args.quick else ''}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    base.with_suffix(".md").write_text(text + "\n")
    (args.out / f"latest-isolation{'-quick' if args.quick else ''}.md").write_text(text + "\n")
    e2e.step(f"wrote {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
