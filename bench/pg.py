"""hookd on PostgreSQL: delivery throughput with 1 and 2 worker processes, claim latency by backlog.

    PYTHONPATH=src python bench/pg.py                # N=20,000 deliveries; backlogs 10k and 1M
    PYTHONPATH=src python bench/pg.py --quick        # N=3,000; backlogs 10k and 100k (< 1 min)
    PYTHONPATH=src python bench/pg.py --url postgresql://…  # default: the local test database

Scenarios, each figure next to a baseline measured in the same run (see bench/README.md):

- delivery: N events are published to an endpoint that is paused, so their deliveries wait,
  parked. W `hookd worker` processes (W = 1, then 2; real subprocesses, `python -m hookd worker`)
  are started and ready; the clock starts when the endpoint is resumed (one UPDATE makes every
  delivery due and NOTIFY wakes the workers) and stops when the receiver has seen N requests and
  the database holds N `delivered` rows. Baseline: the raw aiohttp loop of bench/e2e.py (same
  signed requests, same concurrency), run before and after.
- claim: a backlog of B due deliveries is bulk-loaded (one INSERT … SELECT generate_series),
  analysed, then `PostgresStore.claim(limit=256)` is timed R times (each claim takes its rows).
  The ratio of the median at the largest backlog to the median at 10k says whether the claim's
  cost follows the backlog (it should stay near 1: the claim walks the partial due index).

Every loop is bounded by a count and a time cap; every schema made here is dropped, every child
process stopped. Results: bench/results/pg-<stamp>.{json,md} and latest-pg[-quick].md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT / "src", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import asyncpg  # noqa: E402

import e2e  # noqa: E402  (bench/e2e.py: the receiver, the raw-client baseline, machine info)
from hookd import crypto  # noqa: E402
from hookd.config import Settings, WorkerSettings, parse_networks  # noqa: E402
from hookd.domain.models import DEFAULT_TENANT, EndpointStatus, Secret  # noqa: E402
from hookd.engine import Engine  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENT_TYPE = "order.filled"


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def settings_for(url: str, schema: str, key: str, concurrency: int) -> Settings:
    return Settings(
        database_url=url,
        database_schema=schema,
        secret_key=Secret(key),
        allow_private_networks=parse_networks("127.0.0.0/8"),
        worker=WorkerSettings(concurrency=concurrency),
    )


# --------------------------------------------------------------------------------------------
# delivery: W worker processes


class Workers:
    """W `python -m hookd worker` child processes on one schema."""

    def __init__(self, count: int, env: dict[str, str], logdir: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = [logdir / f"workers{count}-{i}.log" for i in range(count)]
        for log_path in self.logs:
            with log_path.open("wb") as log:
                cmd = [sys.executable, "-m", "hookd", "worker", "--log-level", "warning"]
                self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for proc, log in zip(self.procs, self.logs, strict=True):
            while "hookd worker" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start:\n{log.read_text()}")
                await asyncio.sleep(0.05)

    def cpu_seconds(self) -> float:
        """CPU time the worker processes have used so far (user + system, all threads)."""
        total = 0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def phase_workers(
    args: argparse.Namespace, receiver: e2e.Receiver, count: int, workdir: Path
) -> dict[str, Any]:
    schema = f"hookd_bench_{secrets.token_hex(4)}"
    key = crypto.generate_key()
    settings = settings_for(args.url, schema, key, args.concurrency)
    n = args.events
    try:
        async with Engine(settings, run_worker=False) as engine:
            endpoint, _ = await engine.create_endpoint(
                DEFAULT_TENANT,
                url=receiver.url,
                event_types=["order.*"],
                status=EndpointStatus.PAUSED,
            )
            for first in range(0, n, 500):  # bulk path: 500 events per transaction
                events = [
                    engine.make_event(DEFAULT_TENANT, EVENT_TYPE, e2e.make_payload(i, 400))
                    for i in range(first, min(n, first + 500))
                ]
                await engine.store.publish(events)
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "src"),
                "HOOKD_DATABASE_URL": args.url,
                "HOOKD_DATABASE_SCHEMA": schema,
                "HOOKD_SECRET_KEY": key,
                "HOOKD_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
                "HOOKD_WORKER_CONCURRENCY": str(args.concurrency),
                "HOOKD_WORKER_BATCH_SIZE": str(args.batch_size),
                "HOOKD_CONFIG_DIR": str(workdir / "config"),
            }
            workers = Workers(count, env, workdir)
            try:
                await workers.ready()
                before = await receiver.count()
                conn = await asyncpg.connect(args.url, server_settings={"search_path": schema})
                cpu_before = workers.cpu_seconds()
                started = time.perf_counter()
                deadline = started + args.cap
                await engine.update_endpoint(None, endpoint.id, status=EndpointStatus.ACTIVE)
                received = delivered = 0
                while time.perf_counter() < deadline:
                    received = await receiver.count() - before
                    if received >= n:
                        delivered = await conn.fetchval(
                            "SELECT count(*) FROM deliveries WHERE status = 'delivered'"
                        )
                        if delivered >= n:
                            break
                    await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - started
                cpu = workers.cpu_seconds() - cpu_before
                statuses = dict(
                    await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
                )
                await conn.close()
            finally:
                workers.stop()
    finally:
        await drop_schema(args.url, schema)
    return {
        "workers": count,
        "n": n,
        "delivered": delivered,
        "seconds": round(elapsed, 3),
        "per_second": round(delivered / elapsed, 1) if elapsed else 0.0,
        "worker_cpu_us_per_delivery": round(cpu / delivered * 1e6, 1) if delivered else None,
        "receiver_requests": received,
        "duplicates_sent": max(0, received - n),
        "statuses": statuses,
        "hit_time_cap": delivered < n,
    }


# --------------------------------------------------------------------------------------------
# claim latency by backlog


async def phase_claim(args: argparse.Namespace, backlog: int) -> dict[str, Any]:
    schema = f"hookd_bench_{secrets.token_hex(4)}"
    settings = settings_for(args.url, schema, crypto.generate_key(), args.concurrency)
    try:
        async with Engine(settings, run_worker=False) as engine:
            endpoint, _ = await engine.create_endpoint(
                DEFAULT_TENANT, url="https://example.com/hook", event_types=["order.*"]
            )
            event = await engine.publish(DEFAULT_TENANT, EVENT_TYPE, e2e.make_payload(0, 400))
            conn = await asyncpg.connect(args.url, server_settings={"search_path": schema})
            loaded = time.perf_counter()
            # the backlog: due deliveries (one event, many rows), plus as much finished history
            await conn.execute(
                "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, "
                "status, next_attempt_at, created_at, updated_at) "
                "SELECT 'dlv_' || lpad(g::text, 10, '0'), 'default', $1, $2, $3, "
                "CASE WHEN g % 2 = 0 THEN 'pending' ELSE 'delivered' END, g, g, g "
                "FROM generate_series(1, $4::int * 2) AS g",
                event.event.id,
                endpoint.id,
                EVENT_TYPE,
                backlog,
            )
            await conn.execute("VACUUM ANALYZE deliveries")
            load_seconds = time.perf_counter() - loaded
            await conn.close()
            latencies: list[float] = []
            now = time.time()
            for i in range(args.claims):
                t0 = time.perf_counter()
                claimed = await engine.store.claim(
                    worker_id="bench", limit=256, now=now, lease_seconds=300
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                assert len(claimed) == 256, f"claim {i} took {len(claimed)}"
    finally:
        await drop_schema(args.url, schema)
    ordered = sorted(latencies)
    return {
        "backlog": backlog,
        "history_rows": backlog,
        "claims": len(latencies),
        "median_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "first_ms": round(latencies[0], 2),
        "load_seconds": round(load_seconds, 1),
    }


# --------------------------------------------------------------------------------------------
# report


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    out = [
        f"# hookd on PostgreSQL — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"N={cfg['events']:,} deliveries, concurrency={cfg['concurrency']} per worker process, "
        f"batch_size={cfg['batch_size']}, claims of 256 timed {cfg['claims']}x per backlog, "
        f"cap={cfg['cap']:g} s/phase",
        "",
        "| scenario | figure | baseline | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        flag = "" if row["valid"] else " ⚠"
        out.append(
            f"| {row['scenario']} ({row['unit']}) | {e2e._fmt(row['figure'])} | "
            f"{e2e._fmt(row['baseline'])} | {row['ratio']:.2f}{flag} |"
        )
    out += ["", "## Details", ""]
    base = results["baseline_runs"]
    out.append(f"- raw aiohttp baseline runs (before, after): {base[0]:,.0f}, {base[1]:,.0f} req/s")
    for run in results["delivery"]:
        out.append(
            f"- {run['workers']} worker process(es): {run['delivered']:,}/{run['n']:,} delivered "
            f"in {run['seconds']:.2f} s, {run['worker_cpu_us_per_delivery']} µs of worker CPU "
            f"per delivery; statuses {run['statuses']}; "
            f"{run['duplicates_sent']} duplicates"
        )
    for run in results["claim"]:
        out.append(
            f"- backlog {run['backlog']:,} due (+{run['history_rows']:,} delivered rows): claim "
            f"of 256 median {run['median_ms']} ms, p95 {run['p95_ms']} ms, first "
            f"{run['first_ms']} ms (bulk load + VACUUM ANALYZE {run['load_seconds']} s)"
        )
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in results["machine"].items()]
    return "\n".join(out) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "config": {
            k: getattr(args, k) for k in ("events", "concurrency", "batch_size", "claims", "cap")
        },
        "machine": e2e.machine_info("asyncio"),
    }
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hookd-bench-pg-{secrets.token_hex(4)}"
    workdir.mkdir(parents=True)
    receiver = e2e.Receiver(uvloop=True)
    receiver.start()
    try:
        step("baseline (raw aiohttp) #1")
        before = await e2e.phase_baseline(receiver.url, args.events, args.concurrency, args.cap)
        results["delivery"] = []
        for count in (1, 2):
            step(f"hookd: {count} worker process(es)")
            run_ = await phase_workers(args, receiver, count, workdir)
            step(f"  {run_['per_second']:,.0f} deliveries/s")
            results["delivery"].append(run_)
        step("baseline (raw aiohttp) #2")
        after = await e2e.phase_baseline(receiver.url, args.events, args.concurrency, args.cap)
    finally:
        await receiver.aclose()
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["baseline_runs"] = [before["per_second"], after["per_second"]]
    baseline = statistics.fmean(results["baseline_runs"])
    results["claim"] = []
    for backlog in args.backlogs:
        step(f"claim latency at a backlog of {backlog:,}")
        result = await phase_claim(args, backlog)
        step(f"  median {result['median_ms']} ms")
        results["claim"].append(result)
    one, two = results["delivery"]
    rows: list[dict[str, Any]] = [
        {
            "scenario": f"delivery: {r['workers']} hookd worker process(es) vs raw aiohttp client",
            "unit": "deliveries/s vs requests/s",
            "figure": r["per_second"],
            "baseline": baseline,
            "ratio": r["per_second"] / baseline,
            "valid": not r["hit_time_cap"] and r["statuses"] == {"delivered": r["n"]},
        }
        for r in (one, two)
    ]
    rows.append(
        {
            "scenario": "delivery: 2 worker processes vs 1",
            "unit": "deliveries/s",
            "figure": two["per_second"],
            "baseline": one["per_second"],
            "ratio": two["per_second"] / one["per_second"] if one["per_second"] else 0.0,
            "valid": rows[0]["valid"] and rows[1]["valid"],
        }
    )
    rows.append(
        {
            "scenario": "delivery: worker CPU per delivery, 2 processes vs 1",
            "unit": "µs/delivery",
            "figure": two["worker_cpu_us_per_delivery"],
            "baseline": one["worker_cpu_us_per_delivery"],
            "ratio": (two["worker_cpu_us_per_delivery"] or 0.0)
            / (one["worker_cpu_us_per_delivery"] or 1.0),
            "valid": rows[0]["valid"] and rows[1]["valid"],
        }
    )
    small = results["claim"][0]
    for big in results["claim"][1:]:
        rows.append(
            {
                "scenario": f"claim of 256: median at {big['backlog']:,} due vs "
                f"{small['backlog']:,} due",
                "unit": "ms",
                "figure": big["median_ms"],
                "baseline": small["median_ms"],
                "ratio": big["median_ms"] / small["median_ms"],
                "valid": True,
            }
        )
    results["rows"] = rows
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("HOOKD_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--events", type=int, default=None, help="N (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=256, help="per worker process")
    parser.add_argument("--batch-size", type=int, default=256, help="worker claim batch")
    parser.add_argument("--claims", type=int, default=30, help="claims timed per backlog")
    parser.add_argument(
        "--backlogs", default=None, help="comma list of due backlogs (default 10000,1000000)"
    )
    parser.add_argument("--cap", type=float, default=180.0, help="time cap per phase, seconds")
    parser.add_argument("--quick", action="store_true", help="N=3,000, backlogs 10k and 100k")
    args = parser.parse_args()
    if args.events is None:
        args.events = 3_000 if args.quick else 20_000
    if args.backlogs is None:
        args.backlogs = "10000,100000" if args.quick else "10000,1000000"
    args.backlogs = [int(b) for b in args.backlogs.split(",")]
    if args.claims * 256 > min(args.backlogs):
        parser.error("--claims x 256 must fit in the smallest backlog")
    results = asyncio.run(run(args))
    text = markdown(results)
    print(text)
    out = HERE / "results"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-quick" if args.quick else ""
    (out / f"pg-{stamp}{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"pg-{stamp}{suffix}.md").write_text(text)
    (out / f"latest-pg{suffix}.md").write_text(text)
    step(f"wrote bench/results/pg-{stamp}{suffix}.json and .md")
    return 0 if all(r["valid"] for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
