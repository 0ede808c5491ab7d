"""End-to-end benchmark of hookd: delivery throughput and publish throughput, as ratios.

    PYTHONPATH=src python bench/e2e.py                 # N=20,000 events, concurrency 256
    PYTHONPATH=src python bench/e2e.py --quick         # N=2,000: a smoke run, well under 30 s
    PYTHONPATH=src python bench/e2e.py --profile       # + cProfile of the delivery phase
    PYTHONPATH=src python bench/e2e.py --pyspy         # + py-spy of the delivery phase

Scenarios (see bench/README.md), each figure next to a baseline measured in the same run:

- delivery: N pre-published events drained by hookd's worker (claim → sign → POST → record)
  to a local receiver, against a raw aiohttp client posting the same signed requests with the
  same concurrency and connector limits. The baseline runs before AND after the hookd phase;
  their mean is the baseline and their spread shows how noisy the machine was.
- publish: `Engine.publish` called from C_pub concurrent tasks (group commit) against the same
  call in a sequential loop; plus the bulk path `store.publish` in batches of 500.

Every loop is bounded by a count and by a time cap (`--cap`, per phase); the receiver is a child
process on 127.0.0.1 that is always stopped. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import selectors
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:  # so it also runs without PYTHONPATH=src
    sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

import hookd  # noqa: E402
from hookd import crypto  # noqa: E402
from hookd.config import Settings, WorkerSettings, parse_networks  # noqa: E402
from hookd.delivery.worker import build_headers  # noqa: E402
from hookd.domain import ids  # noqa: E402
from hookd.domain.models import DEFAULT_TENANT, Endpoint, EndpointSecret, Secret  # noqa: E402
from hookd.engine import Engine  # noqa: E402
from hookd.policy import retry, signing  # noqa: E402
from hookd.store.codec import wire_body  # noqa: E402

EVENT_TYPE = "order.filled"
PUBLISH_BATCH = 500
POLL_INTERVAL = 0.02  # seconds between checks of the receiver count while hookd delivers


# --------------------------------------------------------------------------------------------
# workload


def make_payload(i: int, size: int) -> dict[str, Any]:
    """A realistic-looking order, padded so that its JSON is about `size` bytes."""
    payload: dict[str, Any] = {
        "order_id": f"ord_{i:012d}",
        "status": "filled",
        "customer": {"id": f"cus_{i % 9973:06d}", "tier": "gold"},
        "items": [
            {"sku": "SKU-1001", "qty": 2, "unit_price": 1999},
            {"sku": "SKU-2002", "qty": 1, "unit_price": 4999},
        ],
        "total": 8997,
        "currency": "EUR",
        "note": "",
    }
    missing = size - len(orjson.dumps(payload))
    if missing > 0:
        payload["note"] = "x" * missing
    return payload


# --------------------------------------------------------------------------------------------
# the receiver child process


class Receiver:
    """bench/receiver.py in a child process, on 127.0.0.1 and a free port."""

    def __init__(self, *, uvloop: bool, extra_args: tuple[str, ...] = ()) -> None:
        self.uvloop = uvloop
        self.extra_args = extra_args  # e.g. ("--delay", "1.0") or ("--record",)
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self, timeout: float = 15.0) -> None:
        cmd = [sys.executable, str(HERE / "receiver.py"), "--port", "0", *self.extra_args]
        if not self.uvloop:
            cmd.append("--no-uvloop")
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self._proc.stdout is not None
        line = _readline(self._proc.stdout, timeout)
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def count(self) -> int:
        """The receiver's request count, over one kept-alive connection (cheap to poll)."""
        return int((await self.get_json("/count"))["count"])

    async def get_json(self, path: str) -> Any:
        """`GET path` on the receiver (`/count`, `/stats`, `/arrivals`), decoded."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with self._session.get(
            f"http://127.0.0.1:{self.port}{path}", timeout=aiohttp.ClientTimeout(total=30)
        ) as response:
            return await response.json()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stop(self) -> int | None:
        """Stop the child (SIGTERM, then SIGKILL); returns the count it printed, if any."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
        for line in (out or "").splitlines():
            if line.startswith("COUNT "):
                return int(line.split()[1])
        return None


def _readline(stream: io.TextIOBase | Any, timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return str(stream.readline()).strip()


# --------------------------------------------------------------------------------------------
# profiling helpers


class PySpy:
    """py-spy attached to this very process for the measured window (raw collapsed stacks)."""

    def __init__(self, out: Path, rate: int = 250) -> None:
        self.out = out
        self.rate = rate
        self._proc: subprocess.Popen[str] | None = None

    @staticmethod
    def executable() -> str | None:
        found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return found if Path(found).exists() else None

    def start(self) -> None:
        exe = self.executable()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self._proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(self.rate),
                "--threads",
                "--format",
                "raw",
                "--nonblocking",
                "--function",
                "--output",
                str(self.out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = _readline(self._proc.stdout, 10.0)  # "py-spy> Sampling process …"
        if "Sampling" not in line:
            self.stop()
            raise RuntimeError(f"py-spy did not start: {line!r}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)


def cprofile_top(profile: cProfile.Profile, n: int = 15) -> dict[str, list[dict[str, Any]]]:
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        short = filename.replace(str(ROOT) + "/", "")
        if "site-packages/" in short:
            short = short.split("site-packages/", 1)[1]
        rows.append(
            {
                "function": f"{short}:{line}({name})",
                "calls": ncalls,
                "self_s": round(tottime, 4),
                "cum_s": round(cumtime, 4),
            }
        )
    return {
        "by_cumulative": sorted(rows, key=lambda r: -r["cum_s"])[:n],
        "by_self": sorted(rows, key=lambda r: -r["self_s"])[:n],
    }


# --------------------------------------------------------------------------------------------
# phases


def _timing(done: int, elapsed: float, cpu: float, *, target: int, capped: bool) -> dict[str, Any]:
    return {
        "n": target,
        "done": done,
        "seconds": round(elapsed, 4),
        "per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_seconds": round(cpu, 4),
        "cpu_us_per_item": round(cpu / done * 1e6, 1) if done else None,
        "hit_time_cap": capped,
    }


async def phase_baseline(url: str, n: int, concurrency: int, cap: float) -> dict[str, Any]:
    """A raw aiohttp loop: C tasks posting signed requests, same connector limits as hookd."""
    now = time.time()
    endpoint = Endpoint(
        id=ids.new_id(ids.ENDPOINT),
        tenant_id=DEFAULT_TENANT,
        url=url,
        event_types=("order.*",),
        secrets=(EndpointSecret(Secret(signing.generate_secret()), now),),
        retry_policy=retry.DEFAULT_POLICY,
        timeout=15.0,
        created_at=now,
        updated_at=now,
    )
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=10)
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    next_index = 0
    ok = 0
    failed = 0
    payloads = [orjson.dumps(make_payload(i, PAYLOAD_SIZE)) for i in range(min(n, 1000))]
    async with aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    ) as session:
        started = time.perf_counter()
        cpu0 = time.process_time()
        deadline = started + cap

        async def client() -> None:
            nonlocal next_index, ok, failed
            while next_index < n and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                sent_at = time.time()
                body = wire_body(EVENT_TYPE, sent_at, payloads[i % len(payloads)])
                headers = build_headers(endpoint, ids.new_id(ids.DELIVERY), body, sent_at)
                try:
                    async with session.post(
                        url, data=body, headers=headers, allow_redirects=False, timeout=timeout
                    ) as response:
                        await response.read()
                        if 200 <= response.status < 300:
                            ok += 1
                        else:
                            failed += 1
                except (aiohttp.ClientError, TimeoutError):
                    failed += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    result = _timing(ok, elapsed, cpu, target=n, capped=ok + failed < n)
    result["failed"] = failed
    result["body_bytes"] = len(wire_body(EVENT_TYPE, time.time(), payloads[0]))
    return result


def _settings(db: Path, key: str, concurrency: int, batch: int, synchronous: str) -> Settings:
    return Settings(
        db_path=db,
        secret_key=Secret(key),
        allow_private_networks=parse_networks("127.0.0.0/8"),
        sqlite_synchronous=synchronous,
        worker=WorkerSettings(concurrency=concurrency, batch_size=batch),
    )


async def phase_hookd(
    receiver: Receiver,
    n: int,
    concurrency: int,
    batch: int,
    cap: float,
    workdir: Path,
    synchronous: str,
    *,
    profile: cProfile.Profile | None,
    pyspy: PySpy | None,
) -> dict[str, Any]:
    """Pre-publish N events with the worker off, then time the worker draining them."""
    db = workdir / "deliver.db"
    settings = _settings(db, crypto.generate_key(), concurrency, batch, synchronous)

    # 1. prepare: one endpoint, N events through the bulk store path, no worker
    async with Engine(settings, run_worker=False) as engine:
        await engine.create_endpoint(DEFAULT_TENANT, url=receiver.url, event_types=["order.*"])
        started = time.perf_counter()
        cpu0 = time.process_time()
        deadline = started + cap
        published = 0
        while published < n and time.perf_counter() < deadline:
            events = [
                engine.make_event(DEFAULT_TENANT, EVENT_TYPE, make_payload(i, PAYLOAD_SIZE))
                for i in range(published, min(n, published + PUBLISH_BATCH))
            ]
            results = await engine.store.publish(events)
            assert all(r.deliveries == 1 for r in results)
            published += len(events)
        bulk = _timing(
            published,
            time.perf_counter() - started,
            time.process_time() - cpu0,
            target=n,
            capped=published < n,
        )
    requested, n = n, published  # a capped pre-publish drains what it did publish

    # 2. deliver: reopen with the worker, time until every delivery is recorded as delivered
    received_before = await receiver.count()
    poll = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

    def delivered_count() -> int:
        row = poll.execute("SELECT count(*) FROM deliveries WHERE status = 'delivered'").fetchone()
        return int(row[0])

    engine = Engine(settings)
    delivered = received = 0
    first_at: float | None = None
    all_sent_at: float | None = None
    samples: list[tuple[float, int]] = []
    if pyspy is not None:
        pyspy.start()
    started = time.perf_counter()
    cpu0 = time.process_time()
    deadline = started + cap
    if profile is not None:
        profile.enable()
    try:
        await engine.open()
        # Poll the receiver's count (another process: cheap); only once it has seen all N
        # requests, check the store for N `delivered` rows (a count(*) costs ~ms at this size).
        while True:
            received = await receiver.count() - received_before
            now = time.perf_counter()
            if received and first_at is None:
                first_at = now - started
            if len(samples) < 5000:
                samples.append((round(now - started, 3), received))
            if received >= n or now >= deadline:
                if all_sent_at is None and received >= n:
                    all_sent_at = now - started
                delivered = await asyncio.to_thread(delivered_count)
                if delivered >= n or now >= deadline:
                    break
            await asyncio.sleep(POLL_INTERVAL if received < n else POLL_INTERVAL / 4)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        if profile is not None:
            profile.disable()
        if pyspy is not None:
            pyspy.stop()
        await engine.close()
    statuses = dict(poll.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
    attempts = poll.execute("SELECT count(*) FROM attempts").fetchone()[0]
    poll.close()
    received = await receiver.count() - received_before  # again: after the worker stopped
    result = _timing(delivered, elapsed, cpu, target=n, capped=delivered < n)
    result.update(
        {
            "first_request_after_s": None if first_at is None else round(first_at, 3),
            "all_requests_seen_after_s": None if all_sent_at is None else round(all_sent_at, 3),
            "statuses": statuses,
            "attempts_recorded": attempts,
            "receiver_requests": received,
            "duplicates_sent": max(0, received - n),
            "requested": requested,
            "db_bytes": sum(p.stat().st_size for p in workdir.glob("deliver.db*")),
            "progress_s_requests": _thin(samples, 40),
            "bulk_publish": bulk,
        }
    )
    return result


def _thin(samples: list[tuple[float, int]], keep: int) -> list[tuple[float, int]]:
    if len(samples) <= keep:
        return samples
    step = len(samples) / keep
    return [samples[int(i * step)] for i in range(keep)] + [samples[-1]]


async def phase_publish(
    n: int,
    tasks: int,
    cap: float,
    workdir: Path,
    synchronous: str,
    url: str,
    *,
    concurrent: bool,
) -> dict[str, Any]:
    """`Engine.publish`, worker off: `tasks` concurrent callers, or one sequential loop."""
    name = "publish-concurrent" if concurrent else "publish-sequential"
    settings = _settings(workdir / f"{name}.db", crypto.generate_key(), 64, 64, synchronous)
    async with Engine(settings, run_worker=False) as engine:
        await engine.create_endpoint(DEFAULT_TENANT, url=url, event_types=["order.*"])
        payloads = [make_payload(i, PAYLOAD_SIZE) for i in range(min(n, 1000))]
        next_index = 0
        done = 0
        started = time.perf_counter()
        cpu0 = time.process_time()
        deadline = started + cap

        async def publisher() -> None:
            nonlocal next_index, done
            while next_index < n and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                result = await engine.publish(DEFAULT_TENANT, EVENT_TYPE, payloads[i % 1000])
                assert result.deliveries == 1
                done += 1

        await asyncio.gather(*(publisher() for _ in range(tasks if concurrent else 1)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    result = _timing(done, elapsed, cpu, target=n, capped=done < n)
    result["callers"] = tasks if concurrent else 1
    return result


# --------------------------------------------------------------------------------------------
# reporting


def machine_info(loop_name: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    try:
        import uvloop

        uvloop_version: str | None = uvloop.__version__
    except ImportError:
        uvloop_version = None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "sqlite": sqlite3.sqlite_version,
        "uvloop": uvloop_version,
        "event_loop": loop_name,
        "hookd": hookd.__version__,
        "git_commit": commit,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    if not value or not base:
        return None
    return round(value / base, 3)


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    scen = results["scenarios"]
    if "delivery" in scen:
        d = scen["delivery"]
        base = d["baseline"]
        rows.append(
            {
                "scenario": "delivery: hookd worker vs raw aiohttp client",
                "unit": "deliveries/s vs requests/s",
                "figure": d["hookd"]["per_second"],
                "baseline": base["per_second"],
                "ratio": _ratio(d["hookd"]["per_second"], base["per_second"]),
                "valid": d["valid"],
            }
        )
        rows.append(
            {
                "scenario": "delivery: CPU per delivery (this process, all threads)",
                "unit": "µs/delivery vs µs/request",
                "figure": d["hookd"]["cpu_us_per_item"],
                "baseline": base["cpu_us_per_item"],
                "ratio": _ratio(d["hookd"]["cpu_us_per_item"], base["cpu_us_per_item"]),
                "valid": d["valid"],
            }
        )
        bulk = d["hookd"]["bulk_publish"]
    if "publish" in scen:
        p = scen["publish"]
        seq = p["sequential"]["per_second"]
        rows.append(
            {
                "scenario": f"publish: {p['concurrent']['callers']} concurrent Engine.publish "
                "vs sequential",
                "unit": "events/s",
                "figure": p["concurrent"]["per_second"],
                "baseline": seq,
                "ratio": _ratio(p["concurrent"]["per_second"], seq),
                "valid": not p["concurrent"]["hit_time_cap"] or p["concurrent"]["done"] > 0,
            }
        )
        if "delivery" in scen:
            rows.append(
                {
                    "scenario": f"publish: bulk store.publish ({PUBLISH_BATCH}/batch) "
                    "vs sequential",
                    "unit": "events/s",
                    "figure": bulk["per_second"],
                    "baseline": seq,
                    "ratio": _ratio(bulk["per_second"], seq),
                    "valid": True,
                }
            )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    m = results["machine"]
    out = [
        f"# hookd end-to-end benchmark — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"N={cfg['events']:,} events, concurrency={cfg['concurrency']}, "
        f"batch_size={cfg['batch_size']}, publishers={cfg['publishers']}, "
        f"payload≈{cfg['payload_bytes']} B, synchronous={cfg['synchronous']}, "
        f"cap={cfg['cap']:g} s/phase{' (quick)' if cfg['quick'] else ''}"
        f"{', PROFILED: figures inflated' if cfg['profiled'] else ''}",
        "",
        "| scenario | figure | baseline | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        flag = "" if row["valid"] else " ⚠"
        out.append(
            f"| {row['scenario']} ({row['unit']}) | {_fmt(row['figure'])} | "
            f"{_fmt(row['baseline'])} | "
            f"{'n/a' if row['ratio'] is None else format(row['ratio'], '.2f')}{flag} |"
        )
    out += [
        "",
        "Ratio = figure / baseline. Throughput rows: higher is better (1.0 = as fast as the",
        "baseline). CPU row: lower is better (2.0 = twice the CPU per item of the baseline).",
        "",
    ]
    scen = results["scenarios"]
    if "delivery" in scen:
        d = scen["delivery"]
        h = d["hookd"]
        runs = ", ".join(_fmt(b["per_second"]) for b in d["baseline_runs"])
        out += [
            "## Delivery details",
            "",
            f"- baseline runs (before, after hookd): {runs} req/s; spread "
            f"{d['baseline_spread_pct']:.1f}% of their mean",
            f"- hookd: {h['done']:,}/{h['n']:,} delivered in {h['seconds']:.2f} s "
            f"(receiver saw the first request after {_fmt(h['first_request_after_s'])} s, all "
            f"{h['n']:,} after {_fmt(h['all_requests_seen_after_s'])} s); "
            f"statuses {h['statuses']}; "
            f"{h['attempts_recorded']:,} attempts recorded; receiver saw "
            f"{h['receiver_requests']:,} requests ({h['duplicates_sent']} duplicates)",
            f"- request body {d['baseline']['body_bytes']} B; database after the run "
            f"{h['db_bytes'] / 1e6:.1f} MB",
            f"- pre-publish (bulk store.publish): {_fmt(h['bulk_publish']['per_second'])} events/s",
            "",
        ]
    if "publish" in scen:
        p = scen["publish"]
        out += ["## Publish details", ""]
        for key in ("sequential", "concurrent"):
            r = p[key]
            out.append(
                f"- {key}: {r['done']:,}/{r['n']:,} in {r['seconds']:.2f} s, "
                f"{_fmt(r['cpu_us_per_item'])} CPU µs/event"
                f"{' (hit the time cap)' if r['hit_time_cap'] else ''}"
            )
        out.append("")
    out += ["## Machine", ""]
    out += [f"- {k}: {v}" for k, v in m.items()]
    out.append("")
    for kind in ("cprofile", "pyspy"):
        top = results.get(kind)
        if not top:
            continue
        out += [f"## {kind} of the delivery phase", ""]
        for order, rows in top.items():
            if not isinstance(rows, list):
                continue
            head = (
                "| function | calls | self s | cum s |"
                if kind == "cprofile"
                else "| function | samples | self % | cum % |"
            )
            out += [f"### {order}", "", head, "|---|--:|--:|--:|"]
            out += [
                f"| `{r['function']}` | {r.get('calls', r.get('samples'))} | {r['self_s']} | "
                f"{r['cum_s']} |"
                for r in rows
            ]
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# main

PAYLOAD_SIZE = 400


async def run(args: argparse.Namespace, loop_name: str) -> dict[str, Any]:
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results: dict[str, Any] = {
        "started_at": started_at,
        "command": " ".join(["python", *sys.argv]),
        "config": {
            "events": args.events,
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
            "publishers": args.publishers,
            "payload_bytes": args.payload_bytes,
            "synchronous": args.synchronous,
            "cap": args.cap,
            "quick": args.quick,
            "profiled": bool(args.profile or args.pyspy),
            "poll_interval_s": POLL_INTERVAL,
        },
        "machine": machine_info(loop_name),
        "scenarios": {},
    }
    scenarios = set(args.scenarios.split(","))
    receiver = Receiver(uvloop=not args.no_uvloop)
    receiver.start()
    workdir = Path(tempfile.mkdtemp(prefix="hookd-bench-", dir=args.tmpdir))
    profile = cProfile.Profile() if args.profile else None
    pyspy = PySpy(args.out / f"pyspy-{_stamp()}.txt") if args.pyspy else None
    try:
        if "delivery" in scenarios:
            step("baseline (raw aiohttp) #1")
            before = await phase_baseline(receiver.url, args.events, args.concurrency, args.cap)
            step(f"  {before['per_second']:,.0f} req/s")
            step("hookd: pre-publish, then drain with the worker")
            hookd_run = await phase_hookd(
                receiver,
                args.events,
                args.concurrency,
                args.batch_size,
                args.cap,
                workdir,
                args.synchronous,
                profile=profile,
                pyspy=pyspy,
            )
            step(f"  {hookd_run['per_second']:,.0f} deliveries/s")
            step("baseline (raw aiohttp) #2")
            after = await phase_baseline(receiver.url, args.events, args.concurrency, args.cap)
            step(f"  {after['per_second']:,.0f} req/s")
            rates = [before["per_second"], after["per_second"]]
            baseline = dict(before)
            for key in ("per_second", "cpu_us_per_item"):
                values = [r[key] for r in (before, after) if r[key] is not None]
                baseline[key] = round(statistics.fmean(values), 1) if values else None
            valid = (
                not hookd_run["hit_time_cap"]
                and hookd_run["statuses"].get("delivered") == args.events
                and before["done"] == args.events
                and after["done"] == args.events
            )
            results["scenarios"]["delivery"] = {
                "baseline": baseline,
                "baseline_runs": [before, after],
                "baseline_spread_pct": round(
                    abs(rates[0] - rates[1]) / statistics.fmean(rates) * 100, 1
                ),
                "hookd": hookd_run,
                "valid": valid,
            }
        if "publish" in scenarios:
            step("publish: sequential Engine.publish")
            seq = await phase_publish(
                args.events, 1, args.cap, workdir, args.synchronous, receiver.url, concurrent=False
            )
            step(f"  {seq['per_second']:,.0f} events/s")
            step(f"publish: {args.publishers} concurrent Engine.publish callers")
            conc = await phase_publish(
                args.events,
                args.publishers,
                args.cap,
                workdir,
                args.synchronous,
                receiver.url,
                concurrent=True,
            )
            step(f"  {conc['per_second']:,.0f} events/s")
            results["scenarios"]["publish"] = {"sequential": seq, "concurrent": conc}
    finally:
        with contextlib.suppress(Exception):
            await receiver.aclose()
        count = receiver.stop()
        results["receiver_total_requests"] = count
        shutil.rmtree(workdir, ignore_errors=True)
    if profile is not None:
        results["cprofile"] = cprofile_top(profile)
        profile.dump_stats(str(args.out / f"cprofile-{_stamp()}.pstats"))
    if pyspy is not None and pyspy.out.exists():
        from pyspy_top import top_functions  # bench/pyspy_top.py

        results["pyspy"] = top_functions(pyspy.out, 15)
        results["pyspy"]["raw_file"] = os.path.relpath(pyspy.out, ROOT)
    results["rows"] = build_rows(results)
    return results


_STAMP = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def _stamp() -> str:
    return _STAMP


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="hookd end-to-end benchmark (delivery and publish throughput, as ratios)."
    )
    parser.add_argument("--events", type=int, default=None, help="N (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight")
    parser.add_argument("--batch-size", type=int, default=256, help="worker claim batch")
    parser.add_argument("--publishers", type=int, default=200, help="concurrent publish tasks")
    parser.add_argument("--payload-bytes", type=int, default=400, help="event data JSON size")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "EXTRA"])
    parser.add_argument("--cap", type=float, default=120.0, help="time cap per phase, seconds")
    parser.add_argument("--quick", action="store_true", help="N=2,000, cap 20 s: a smoke run")
    parser.add_argument(
        "--scenarios", default="delivery,publish", help="comma list of: delivery, publish"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the delivery phase")
    parser.add_argument("--pyspy", action="store_true", help="py-spy the delivery phase")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument("--tmpdir", default=None, help="where the temporary databases go")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = 2_000 if args.quick else 20_000
    if args.quick:
        args.cap = min(args.cap, 20.0)
    if args.events <= 0 or args.concurrency <= 0 or args.publishers <= 0 or args.cap <= 0:
        parser.error("--events, --concurrency, --publishers and --cap must be positive")
    if args.pyspy and PySpy.executable() is None:
        parser.error("--pyspy needs py-spy (pip install py-spy)")
    unknown = set(args.scenarios.split(",")) - {"delivery", "publish"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    global PAYLOAD_SIZE
    args = parse_args(argv)
    PAYLOAD_SIZE = args.payload_bytes
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    runner: Callable[[Awaitable[dict[str, Any]]], dict[str, Any]] = asyncio.run  # type: ignore[assignment]
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run
            loop_name = f"uvloop {uvloop.__version__}"
        except ImportError:
            pass
    results = runner(run(args, loop_name))
    text = markdown(results)
    print(text)
    suffix = (
        ("-quick" if args.quick else "")
        + ("-profiled" if args.profile or args.pyspy else "")
        + ("-partial" if set(args.scenarios.split(",")) != {"delivery", "publish"} else "")
    )
    base = args.out / f"e2e-{_stamp()}{suffix}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    base.with_suffix(".md").write_text(text + "\n")
    (args.out / f"latest-e2e{suffix}.md").write_text(text + "\n")
    step(f"wrote {base}.json, {base}.md, latest-e2e{suffix}.md")
    return 0 if all(r["valid"] for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
