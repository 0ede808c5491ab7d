"""hookd's benchmark suite: every throughput target of the issue, each next to a baseline.

    python bench/suite.py                      # everything, under 10 minutes here
    python bench/suite.py --quick              # smaller sizes and shorter windows, under 1 minute
    python bench/suite.py --scenarios publish,latency --out /tmp/results
    python bench/suite.py --client native      # hookd and the baseline on the native client

hookd runs as real processes: `hookd serve` on SQLite in a temporary directory; `hookd api` and
`hookd worker` on PostgreSQL in a throw-away schema (created here, dropped at the end). The fast
receiver (bench/receiver.py), the baseline server (bench/hello.py) and the load generator
(bench/loadgen.py) are processes of their own. Scenarios (bench/README.md has the details):

    e2e-sqlite    deliveries/s of `hookd serve`  vs  a raw client loop of the same HTTP library
    e2e-postgres  the same with 1 and 2 `hookd worker` processes
    publish       events/s, single-event and batch requests  vs  a bare FastAPI/uvicorn POST
    latency       publish accepted → request at the receiver, p50/p95/p99 at 25/50/75% load
    fanout        one event to 1, 10, 100, 1,000 endpoints: deliveries/s, publish latency
    backlog       claim cost and RSS with 10k … 1M pending deliveries
    slow          receivers answering after 1 s: throughput at 1k/5k/10k concurrency vs ideal

Each scenario prints a table and writes `<out>/<scenario>-<stamp>.json` and `.md` and
`latest-<scenario>.md`; the suite writes `latest-suite.md` (one summary table) and the plots
(`<scenario>.png`). `--quick` runs add `-quick` to every name. Every loop is bounded by a count
and a time cap; all traffic stays on 127.0.0.1. Exit status 1 when a scenario did not complete
(an error, a time cap, a delivery missing), not for a missed target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT / "src", HERE):
    if str(_path) not in sys.path:  # so it also runs without PYTHONPATH=src
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

import e2e  # noqa: E402  (bench/e2e.py: the receiver handle, the raw aiohttp loop, machine info)
from hookd import crypto  # noqa: E402

SCENARIOS = ("e2e-sqlite", "e2e-postgres", "publish", "latency", "fanout", "backlog", "slow")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENT_TYPE = "order.filled"
PAYLOAD_BYTES = 400


# --------------------------------------------------------------------------------------------
# sizes: full and quick


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    concurrency: int = 256  # worker concurrency = per-endpoint max in flight = baseline tasks
    e2e_events: int = 40_000
    pg_events: int = 20_000
    publish_seconds: float = 5.0
    publish_connections: int = 64
    batch_size: int = 1000
    batch_connections: int = 4
    latency_probe_seconds: float = 3.0
    latency_seconds: float = 6.0
    latency_loads: tuple[float, ...] = (0.25, 0.5, 0.75)
    fanout_levels: tuple[int, ...] = (1, 10, 100, 1000)
    fanout_deliveries: int = 20_000
    fanout_single_publishes: int = 5
    backlogs: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    claims: int = 20
    backlog_window: float = 3.0
    slow_levels: tuple[int, ...] = (1000, 5000, 10_000)
    slow_rounds: int = 4  # deliveries per level = rounds x concurrency
    slow_delay: float = 1.0
    cap: float = 120.0  # seconds, any one bounded loop


FULL = Sizes()
QUICK = Sizes(
    e2e_events=4_000,
    pg_events=2_000,
    publish_seconds=1.0,
    batch_connections=2,
    latency_probe_seconds=1.0,
    latency_seconds=1.2,
    fanout_levels=(1, 10, 100),
    fanout_deliveries=2_000,
    fanout_single_publishes=3,
    backlogs=(10_000, 100_000),
    claims=10,
    backlog_window=0.8,
    slow_levels=(500, 1000),
    slow_rounds=1,
    cap=20.0,
)


# --------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(slots=True)
class Row:
    """One line of a table: hookd's figure, the baseline measured in the same run, the ratio."""

    scenario: str
    metric: str
    unit: str
    figure: float | None
    baseline: float | None
    baseline_label: str
    target: str = "-"
    met: bool | None = None  # None: no target for this row
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


@dataclasses.dataclass(slots=True)
class Outcome:
    name: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    complete: bool = True  # False: an error, a time cap, or something not delivered
    problems: list[str] = dataclasses.field(default_factory=list)
    log: list[str] = dataclasses.field(default_factory=list)  # long failure texts, whole
    seconds: float = 0.0

    def fail(self, why: str) -> None:
        """Mark incomplete. The reason is kept on one line (first and last lines of a long one,
        such as a child's log tail), fit for a table cell; the whole text goes to `log`."""
        self.complete = False
        lines = [line.strip(" │") for line in why.splitlines() if line.strip(" │")]
        short = lines[0] if len(lines) < 2 else f"{lines[0]} … {lines[-1]}"
        self.problems.append(short.replace("|", "/"))
        if len(lines) > 1:
            self.log.append(why)


def fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and (digits or abs(value) < 10):
        return f"{value:,.{digits or 2}f}"
    return f"{value:,.0f}"


def met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def rows_table(rows: Sequence[Row], *, with_scenario: bool) -> list[str]:
    names = ["metric", "hookd", "baseline", "ratio", "target", "met?"]
    aligns = ["---", "---:", "---:", "---:", "---", "---"]
    if with_scenario:
        names.insert(0, "scenario")
        aligns.insert(0, "---")
    out = ["| " + " | ".join(names) + " |", "| " + " | ".join(aligns) + " |"]
    for r in rows:
        cells = [
            f"{r.metric} ({r.unit})",
            fmt(r.figure, 1 if r.figure is not None and r.figure < 100 else 0),
            f"{fmt(r.baseline, 1 if r.baseline is not None and r.baseline < 100 else 0)} "
            f"({r.baseline_label})",
            "n/a" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            met_text(r.met),
        ]
        if with_scenario:
            cells.insert(0, r.scenario)
        out.append("| " + " | ".join(cells) + " |")
    return out


def scenario_markdown(outcome: Outcome, meta: dict[str, Any]) -> str:
    out = [
        f"# hookd bench: {outcome.name} — {meta['started_at']}",
        "",
        f"`{meta['command']}` · {'quick' if meta['quick'] else 'full'} run · client "
        f"{meta['client']} · {outcome.seconds:.1f} s · "
        + ("complete" if outcome.complete else "**INCOMPLETE**: " + "; ".join(outcome.problems)),
        "",
        *rows_table(outcome.rows, with_scenario=False),
        "",
        "Ratio = hookd / baseline (for times and memory, lower is better).",
        "",
    ]
    if outcome.notes:
        out += ["## Notes", "", *[f"- {n}" for n in outcome.notes], ""]
    for text in outcome.log:
        out += ["## Failure", "", "```", text, "```", ""]
    out += ["## Details", "", "```json", json.dumps(outcome.details, indent=1, default=str), "```"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# processes


def raise_fd_limit() -> None:
    """In children (preexec_fn) and here: many connections need many file descriptors."""
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_pressure() -> float | None:
    """The share of the last 10 s in which some runnable task waited for a CPU (Linux PSI,
    `/proc/pressure/cpu`, percent): other work on the machine competing with the benchmark."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(line.split()[1].partition("=")[2])
    return None


def proc_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def proc_cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=raise_fd_limit,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class ReadyLine:
    """A child that prints `LISTENING <port>` (bench/hello.py)."""

    def __init__(self, script: Path, args: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=child_env(),
            preexec_fn=raise_fd_limit,
        )
        assert self.proc.stdout is not None
        line = e2e._readline(self.proc.stdout, 20.0)
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"{script.name} did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any HOOKD_* setting (a stray HOOKD_DATABASE_URL would move a
    SQLite run to PostgreSQL), with src/ on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class Hookd:
    """hookd as processes: `serve` (SQLite) or `api` + `worker`s (PostgreSQL), and its API."""

    def __init__(
        self,
        workdir: Path,
        *,
        client: str,
        concurrency: int,
        database_url: str | None = None,
        schema: str | None = None,
        extra_env: dict[str, str] | None = None,
        worker_processes: int = 1,
    ) -> None:
        self.workdir = workdir
        self.db_path = workdir / "hookd.db"
        self.database_url = database_url
        self.schema = schema
        self.api_key = crypto.generate_api_key()
        self.secret_key = crypto.generate_key()
        self.port = 0
        self.server: Child | None = None
        self.workers: list[Child] = []
        self._session: aiohttp.ClientSession | None = None
        env = {
            "HOOKD_SECRET_KEY": self.secret_key,
            "HOOKD_API_KEY": self.api_key,
            "HOOKD_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
            "HOOKD_RATE_LIMIT_PER_KEY": "off",
            "HOOKD_RATE_LIMIT_PER_IP": "off",
            "HOOKD_CONFIG_DIR": str(workdir / "config"),
            "HOOKD_WORKER_CONCURRENCY": str(concurrency),
            "HOOKD_ENDPOINT_MAX_IN_FLIGHT": str(concurrency),
            "HOOKD_SHUTDOWN_GRACE": "2",
            # explicit both ways: hookd's default client may be either
            "HOOKD_HTTP_CLIENT": client,
            "HOOKD_WORKER_PROCESSES": str(worker_processes),
        }
        if database_url is not None:
            env["HOOKD_DATABASE_URL"] = database_url
            if schema is not None:
                env["HOOKD_DATABASE_SCHEMA"] = schema
        env.update(extra_env or {})
        self.env = child_env(env)
        self._count = 0

    def _db_args(self) -> list[str]:
        if self.database_url is not None:
            return ["--database-url", self.database_url]
        return ["--db", str(self.db_path)]

    def _cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hookd", *args, "--log-level", "warning"]

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hookd", "migrate", *self._db_args()],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    async def start_server(self, command: str = "serve", timeout: float = 30.0) -> float:
        """Start `hookd serve` (or `api`); returns the seconds until /healthz answered."""
        self.port = free_port()
        self._count += 1
        started = time.perf_counter()
        self.server = Child(
            f"{command}-{self._count}",
            self._cmd(command, *self._db_args(), "--port", str(self.port)),
            self.env,
            self.workdir,
        )
        deadline = started + timeout
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self.session().get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            if not self.server.alive() or time.perf_counter() > deadline:
                raise RuntimeError(f"hookd {command} did not start:\n{self.server.tail()}")
            await asyncio.sleep(0.05)

    async def start_workers(self, count: int, timeout: float = 30.0) -> None:
        for i in range(count):
            self._count += 1
            self.workers.append(
                Child(
                    f"worker-{self._count}-{i}",
                    self._cmd("worker", *self._db_args()),
                    self.env,
                    self.workdir,
                )
            )
        deadline = time.perf_counter() + timeout
        for worker in self.workers:
            while "hookd worker" not in worker.log.read_text(errors="replace"):
                if not worker.alive() or time.perf_counter() > deadline:
                    raise RuntimeError(f"a hookd worker did not start:\n{worker.tail()}")
                await asyncio.sleep(0.05)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def server_pids(self) -> list[int]:
        """The server's process and the helper processes (worker, API) it started."""
        assert self.server is not None
        pid = self.server.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *map(int, children)]

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.stop_workers()
        self.stop_server()

    # the API -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=16),
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=aiohttp.ClientTimeout(total=60),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        async with self.session().request(
            method, self.url + path, data=data, headers=headers
        ) as response:
            text = await response.read()
            if response.status >= 300:
                raise RuntimeError(
                    f"{method} {path}: {response.status} {text[:300]!r}{self._log()}"
                )
            return orjson.loads(text) if text else None

    async def published_by_api_process(self) -> dict[str, float]:
        """`hookd_api_process_events_published_total` by process (empty with one API process)."""
        async with self.session().get(self.url + "/metrics") as response:
            text = await response.text()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hookd_api_process_events_published_total{"):
                label, _, value = line.partition("} ")
                found[label.split('"')[1]] = float(value)
        return found

    def _log(self) -> str:
        """The server's log tail (a 5xx's traceback), for the failure report."""
        return f"\nserver log:\n{self.server.tail(40)}" if self.server is not None else ""

    async def create_endpoint(
        self, url: str, event_types: list[str], *, paused: bool = False
    ) -> str:
        created = await self.call("POST", "/v1/endpoints", {"url": url, "event_types": event_types})
        endpoint_id = str(created["id"])
        if paused:
            await self.call("POST", f"/v1/endpoints/{endpoint_id}/pause")
        return endpoint_id

    async def publish_many(
        self, n: int, event_type: str = EVENT_TYPE, *, batch: int = 1000, parallel: int = 2
    ) -> float:
        """Publish n events through the batch route; returns the seconds it took."""
        started = time.perf_counter()
        next_first = 0
        body_cache: dict[int, bytes] = {}

        def body(size: int) -> bytes:
            if size not in body_cache:
                events = [
                    {"type": event_type, "payload": e2e.make_payload(i, PAYLOAD_BYTES)}
                    for i in range(size)
                ]
                body_cache[size] = orjson.dumps({"events": events})
            return body_cache[size]

        async def publisher() -> None:
            nonlocal next_first
            while next_first < n:
                size = min(batch, n - next_first)
                next_first += size
                async with self.session().post(
                    self.url + "/v1/events/batch",
                    data=body(size),
                    headers={"Content-Type": "application/json"},
                ) as response:
                    if response.status != 202:
                        raise RuntimeError(f"batch publish: {response.status}{self._log()}")
                    await response.read()

        await asyncio.gather(*(publisher() for _ in range(parallel)))
        return time.perf_counter() - started

    # the database ------------------------------------------------------------------------------
    async def delivered(self) -> int:
        return await self.count("status = 'delivered'")

    async def count(self, where: str) -> int:
        query = f"SELECT count(*) FROM deliveries WHERE {where}"
        if self.database_url is None:

            def run() -> int:
                conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
                try:
                    return int(conn.execute(query).fetchone()[0])
                finally:
                    conn.close()

            return await asyncio.to_thread(run)
        import asyncpg

        conn = await asyncpg.connect(
            self.database_url, server_settings={"search_path": self.schema or "public"}
        )
        try:
            return int(await conn.fetchval(query))
        finally:
            await conn.close()

    async def statuses(self) -> dict[str, int]:
        query = "SELECT status, count(*) FROM deliveries GROUP BY status"
        if self.database_url is None:

            def run() -> dict[str, int]:
                conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
                try:
                    return {str(s): int(c) for s, c in conn.execute(query).fetchall()}
                finally:
                    conn.close()

            return await asyncio.to_thread(run)
        import asyncpg

        conn = await asyncpg.connect(
            self.database_url, server_settings={"search_path": self.schema or "public"}
        )
        try:
            return {str(r[0]): int(r[1]) for r in await conn.fetch(query)}
        finally:
            await conn.close()


async def wait_delivered(
    hookd: Hookd,
    receiver: e2e.Receiver,
    *,
    received_target: int,
    delivered_target: int,
    cap: float,
    samples: list[tuple[float, int]] | None = None,
) -> tuple[float, bool]:
    """Poll the receiver (cheap: another process), then the database, until both reach their
    targets or `cap` seconds pass. Returns (the seconds since the call, whether they did).
    `samples`: gets (seconds since the call, the receiver's count) at every poll."""
    started = time.perf_counter()
    deadline = started + cap
    while time.perf_counter() < deadline:
        count = await receiver.count()
        if samples is not None:
            samples.append((time.perf_counter() - started, count))
        if count >= received_target and await hookd.delivered() >= delivered_target:
            return time.perf_counter() - started, True
        await asyncio.sleep(0.02)
    return time.perf_counter() - started, False


#: The part of a drain whose rate is its steady rate: from the poll that first saw this share of
#: the requests at the receiver to the one that first saw the second share.
STEADY = (0.1, 0.9)


def steady_rate(samples: Sequence[tuple[float, int]], start: int, n: int) -> float | None:
    """Requests/s at the receiver between the STEADY shares of a drain's `n` requests (`start`:
    its count before), from `wait_delivered`'s samples; None if the polls were too coarse."""
    low = high = None
    for seconds, count in samples:
        done = count - start
        if low is None and done >= STEADY[0] * n:
            low = (seconds, done)
        if high is None and done >= STEADY[1] * n:
            high = (seconds, done)
            break
    if low is None or high is None or high[0] <= low[0]:
        return None
    return (high[1] - low[1]) / (high[0] - low[0])


# --------------------------------------------------------------------------------------------
# the raw client baseline


async def raw_native_loop(url: str, n: int, concurrency: int, cap: float) -> dict[str, Any]:
    """A raw loop of hookd's native HTTP/1.1 client: C tasks, same signed requests as hookd.

    Uses only the `Sender` port (`send(url, headers, body, timeout=)`, `close()`)."""
    from hookd.delivery.http1 import NativeSender
    from hookd.delivery.ssrf import AddressPolicy
    from hookd.delivery.worker import build_headers
    from hookd.domain import ids
    from hookd.domain.models import DEFAULT_TENANT, Endpoint, EndpointSecret, Secret
    from hookd.policy import retry, signing
    from hookd.store.codec import wire_body

    sender = NativeSender(AddressPolicy.allowing(["127.0.0.0/8"]), max_connections=concurrency)
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
    payloads = [orjson.dumps(e2e.make_payload(i, PAYLOAD_BYTES)) for i in range(min(n, 1000))]
    next_index = ok = failed = 0
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
            outcome = await sender.send(url, headers, body, timeout=endpoint.timeout)
            if outcome.status is not None and 200 <= outcome.status < 300:
                ok += 1
            else:
                failed += 1

    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        await sender.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {
        "n": n,
        "done": ok,
        "failed": failed,
        "seconds": round(elapsed, 4),
        "per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_us_per_item": round(cpu / ok * 1e6, 1) if ok else None,
        "hit_time_cap": ok + failed < n,
    }


async def raw_loop(ctx: Context, n: int) -> dict[str, Any]:
    """The baseline of the delivery scenarios: a raw loop of the client hookd runs on."""
    if ctx.client == "native":
        return await raw_native_loop(ctx.receiver.url, n, ctx.sizes.concurrency, ctx.sizes.cap)
    return await e2e.phase_baseline(ctx.receiver.url, n, ctx.sizes.concurrency, ctx.sizes.cap)


# --------------------------------------------------------------------------------------------
# the load generator


class LoadGen:
    """bench/loadgen.py processes started together (READY, then a line on stdin each)."""

    def __init__(self, port: int, api_key: str, procs: int, **options: Any) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        for i in range(procs):
            cmd = [sys.executable, str(HERE / "loadgen.py"), "--port", str(port)]
            cmd += ["--api-key", api_key] if api_key else []
            for key, value in options.items():
                if key == "count":
                    value = max(1, int(value) // procs)
                elif key == "rate":
                    value = float(value) / procs
                elif key == "token_prefix":
                    value = f"{value}{i}-"
                elif key == "accepted_out":
                    value = f"{value}.{i}"
                cmd += [f"--{key.replace('_', '-')}", str(value)]
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=child_env(),
                    preexec_fn=raise_fd_limit,
                )
            )
        self.accepted_out = options.get("accepted_out")

    def _ready(self) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = e2e._readline(proc.stdout, 30.0)
            if line != "READY":
                self.kill()
                raise RuntimeError(f"the load generator did not start: {line!r}")

    def _finish(self, timeout: float) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in self.procs:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError("the load generator did not finish in time") from None
            if proc.returncode != 0:
                raise RuntimeError(f"the load generator failed: {err[-500:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    async def run(self, timeout: float) -> dict[str, Any]:
        """Start every process at once; the merged outcome (events summed, the longest span)."""
        try:
            await asyncio.to_thread(self._ready)
            parts = await asyncio.to_thread(self._finish, timeout)
        finally:
            self.kill()
        seconds = max(p["seconds"] for p in parts)
        events = sum(p["events_ok"] for p in parts)
        statuses: dict[str, int] = {}
        for part in parts:
            for key, value in part["statuses"].items():
                statuses[key] = statuses.get(key, 0) + value
        merged = {
            "processes": len(parts),
            "events_ok": events,
            "requests_sent": sum(p["requests_sent"] for p in parts),
            "requests_failed": sum(p["requests_failed"] for p in parts),
            "seconds": seconds,
            "events_per_second": round(events / seconds, 1) if seconds else 0.0,
            "statuses": statuses,
            "latency_ms": {
                q: max((p["latency_ms"][q] or 0.0) for p in parts)
                for q in ("p50", "p95", "p99", "max")
            },
            "schedule_lag_max_ms": max(p["schedule_lag_max_ms"] for p in parts),
            "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
        }
        if self.accepted_out:
            accepted: dict[str, float] = {}
            for i in range(len(parts)):
                path = Path(f"{self.accepted_out}.{i}")
                accepted.update(orjson.loads(path.read_bytes()))
                path.unlink()
            merged["accepted"] = accepted
        return merged


# --------------------------------------------------------------------------------------------
# the run context


@dataclasses.dataclass(slots=True)
class Context:
    args: argparse.Namespace
    sizes: Sizes
    client: str
    receiver: e2e.Receiver
    workdir: Path

    def tmp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))

    def hookd(self, name: str, **kwargs: Any) -> Hookd:
        kwargs.setdefault("concurrency", self.sizes.concurrency)
        return Hookd(self.tmp(name), client=self.client, **kwargs)


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def spread_pct(values: Sequence[float]) -> float:
    mean = statistics.fmean(values)
    return round((max(values) - min(values)) / mean * 100, 1) if mean else 0.0


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------------------------
# 1. e2e-sqlite


#: `hookd serve --worker-processes N` for each N: one process, and one per core of these machines.
E2E_PROCESSES = (1, 2)


async def e2e_sqlite(ctx: Context, out: Outcome) -> None:
    n = ctx.sizes.e2e_events
    step(f"e2e-sqlite: raw {ctx.client} loop #1 ({n:,} requests)")
    before = await raw_loop(ctx, n)
    step(f"  {before['per_second']:,.0f} req/s")
    runs: dict[int, dict[str, Any]] = {}
    for processes in E2E_PROCESSES:
        runs[processes] = await e2e_sqlite_run(ctx, out, n, processes)
        step(f"  hookd, {processes} worker process(es): {runs[processes]['per_second']:,.0f}/s")
    step(f"  raw {ctx.client} loop #2")
    after = await raw_loop(ctx, n)
    base = statistics.fmean([before["per_second"], after["per_second"]])
    for run in (before, after):
        if run["done"] != n:
            out.fail(f"the raw loop completed {run['done']:,}/{n:,}")
    for processes, run in runs.items():
        label = "hookd serve → receiver" + (
            f" ({processes} worker processes)" if processes > 1 else ""
        )
        figures = [(label + ", whole drain", run["per_second"])]
        if run["steady_per_second"] is not None:
            share = f"{STEADY[0]:.0%}→{STEADY[1]:.0%}"
            figures.append(
                (f"{label}, sustained ({share} of the requests)", run["steady_per_second"])
            )
        for name, rate in figures:
            ratio = rate / base if base else 0.0
            out.rows.append(
                Row(
                    "e2e-sqlite",
                    name,
                    "deliveries/s",
                    rate,
                    base,
                    f"raw {ctx.client} loop",
                    target="≥ 20,000/s and ≥ 0.8x raw",
                    met=rate >= 20_000 and ratio >= 0.8,
                )
            )
    out.details = {
        "events": n,
        "concurrency": ctx.sizes.concurrency,
        "client": ctx.client,
        "runs": {str(p): run for p, run in runs.items()},
        "baseline_runs_per_s": [before["per_second"], after["per_second"]],
        "baseline_spread_pct": spread_pct([before["per_second"], after["per_second"]]),
        "baseline_cpu_us_per_request": [before["cpu_us_per_item"], after["cpu_us_per_item"]],
    }
    out.notes.append(
        f"The endpoint is paused while {n:,} events are published (batch route), then resumed: "
        "the clock runs from the resume until the receiver has every request and the database "
        "every delivery `delivered` (*whole drain*: resuming, start-up of the claims and the "
        "tail included). *Sustained*: the receiver's rate from the poll (every 20 ms) that first "
        f"saw {STEADY[0]:.0%} of the requests to the one that first saw {STEADY[1]:.0%}. "
        "Once with one process (`hookd serve`), once with "
        "`--worker-processes 2` (one delivery worker per core: the owner and one more process "
        "over the same SQLite file). The raw loop runs in the suite process before and after; "
        "the baseline is their mean. CPU per delivery counts every hookd process."
    )


async def e2e_sqlite_run(ctx: Context, out: Outcome, n: int, processes: int) -> dict[str, Any]:
    """One `hookd serve --worker-processes N` draining `n` deliveries."""
    hookd = ctx.hookd(f"e2e-sqlite-{processes}", worker_processes=processes)
    try:
        startup = await hookd.start_server("serve")
        endpoint = await hookd.create_endpoint(ctx.receiver.url, ["order.*"], paused=True)
        prefill = await hookd.publish_many(n)
        received0 = await ctx.receiver.count()
        pids = hookd.server_pids()
        cpu0 = sum(proc_cpu_seconds(pid) for pid in pids)
        started = time.perf_counter()
        await hookd.call("POST", f"/v1/endpoints/{endpoint}/resume")
        resumed = time.perf_counter() - started
        samples: list[tuple[float, int]] = []
        seconds, ok = await wait_delivered(
            hookd,
            ctx.receiver,
            received_target=received0 + n,
            delivered_target=n,
            cap=ctx.sizes.cap,
            samples=samples,
        )
        seconds = time.perf_counter() - started
        cpu = sum(proc_cpu_seconds(pid) for pid in pids) - cpu0
        rss = [proc_rss_mb(pid) for pid in pids]
        received = await ctx.receiver.count() - received0
        statuses = await hookd.statuses()
    finally:
        await hookd.aclose()
    if len(pids) != processes:
        out.fail(f"hookd serve --worker-processes {processes} ran {len(pids)} processes")
    if not ok:
        out.fail(f"not all {n:,} delivered within {ctx.sizes.cap:g} s: {statuses}")
    rate = n / seconds if ok else statuses.get("delivered", 0) / seconds
    steady = steady_rate(samples, received0, n) if ok else None
    return {
        "processes": processes,
        "per_second": round(rate, 1),
        "steady_per_second": None if steady is None else round(steady, 1),
        "seconds": round(seconds, 3),
        "resume_call_s": round(resumed, 3),
        "cpu_us_per_delivery": round(cpu / n * 1e6, 1),
        "rss_mb": rss,
        "serve_startup_s": round(startup, 3),
        "prefill_batch_route_events_per_s": round(n / prefill, 1),
        "receiver_requests": received,
        "duplicates": max(0, received - n),
        "statuses": statuses,
    }


# --------------------------------------------------------------------------------------------
# 2. e2e-postgres


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def e2e_postgres(ctx: Context, out: Outcome) -> None:
    n = ctx.sizes.pg_events
    url = ctx.args.pg_url
    schema = f"hookd_bench_{secrets.token_hex(4)}"
    step(f"e2e-postgres: raw {ctx.client} loop #1 ({n:,} requests)")
    before = await raw_loop(ctx, n)
    hookd = ctx.hookd("e2e-postgres", database_url=url, schema=schema)
    runs: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(hookd.migrate)
        startup = await hookd.start_server("api")
        endpoint = await hookd.create_endpoint(ctx.receiver.url, ["order.*"], paused=True)
        for count in (1, 2):
            if count > 1:
                await hookd.call("POST", f"/v1/endpoints/{endpoint}/pause")
            prefill = await hookd.publish_many(n)
            await hookd.start_workers(count)
            received0 = await ctx.receiver.count()
            delivered0 = await hookd.delivered()
            cpu0 = sum(proc_cpu_seconds(w.pid) for w in hookd.workers)
            started = time.perf_counter()
            await hookd.call("POST", f"/v1/endpoints/{endpoint}/resume")
            _, ok = await wait_delivered(
                hookd,
                ctx.receiver,
                received_target=received0 + n,
                delivered_target=delivered0 + n,
                cap=ctx.sizes.cap,
            )
            seconds = time.perf_counter() - started
            cpu = sum(proc_cpu_seconds(w.pid) for w in hookd.workers) - cpu0
            delivered = await hookd.delivered() - delivered0
            received = await ctx.receiver.count() - received0
            hookd.stop_workers()
            if not ok:
                out.fail(f"{count} worker(s): {delivered:,}/{n:,} delivered within the cap")
            runs.append(
                {
                    "workers": count,
                    "delivered": delivered,
                    "seconds": round(seconds, 3),
                    "per_second": round(delivered / seconds, 1),
                    "worker_cpu_us_per_delivery": round(cpu / max(delivered, 1) * 1e6, 1),
                    "receiver_requests": received,
                    "duplicates": max(0, received - n),
                    "prefill_events_per_s": round(n / prefill, 1),
                }
            )
            step(f"  {count} worker process(es): {delivered / seconds:,.0f} deliveries/s")
        statuses = await hookd.statuses()
    finally:
        await hookd.aclose()
        with contextlib.suppress(Exception):
            await drop_schema(url, schema)
    step(f"  raw {ctx.client} loop #2")
    after = await raw_loop(ctx, n)
    base = statistics.fmean([before["per_second"], after["per_second"]])
    for run in runs:
        out.rows.append(
            Row(
                "e2e-postgres",
                f"{run['workers']} hookd worker process(es) → receiver",
                "deliveries/s",
                run["per_second"],
                base,
                f"raw {ctx.client} loop",
            )
        )
    if len(runs) == 2:
        out.rows.append(
            Row(
                "e2e-postgres",
                "2 worker processes vs 1",
                "deliveries/s",
                runs[1]["per_second"],
                runs[0]["per_second"],
                "1 worker process",
            )
        )
    out.details = {
        "events_per_run": n,
        "schema": schema,
        "api_startup_s": round(startup, 3),
        "runs": runs,
        "statuses_at_end": statuses,
        "baseline_runs_per_s": [before["per_second"], after["per_second"]],
        "baseline_spread_pct": spread_pct([before["per_second"], after["per_second"]]),
    }
    out.notes.append(
        "`hookd api` publishes to a paused endpoint; W `hookd worker` processes start, the "
        "endpoint is resumed and the clock runs until all N are delivered. On 2 cores shared "
        "with PostgreSQL, the receiver and the suite, 2 vs 1 shows contention more than scale."
    )


# --------------------------------------------------------------------------------------------
# 3. publish


#: `hookd serve --api-processes N` for each N: one process, and one per core of these machines.
PUBLISH_API_PROCESSES = (1, 2)


async def publish(ctx: Context, out: Outcome) -> None:
    sz = ctx.sizes
    procs = ctx.args.loadgen_procs
    hello = ReadyLine(HERE / "hello.py", ["--port", "0"])
    servers = {
        n: ctx.hookd(f"publish-{n}", extra_env={"HOOKD_API_PROCESSES": str(n)})
        for n in PUBLISH_API_PROCESSES
    }
    results: dict[str, dict[str, Any]] = {}
    processes: dict[int, int] = {}
    try:
        for n, hookd in servers.items():
            await hookd.start_server("serve")
            await hookd.create_endpoint(ctx.receiver.url, ["order.*"], paused=True)
            processes[n] = len(hookd.server_pids())

        async def phase(name: str, port: int, key: str, kind: str) -> dict[str, Any]:
            single = kind == "single"
            gen = LoadGen(
                port,
                key,
                procs,
                kind=kind,
                connections=sz.publish_connections if single else sz.batch_connections,
                batch_size=sz.batch_size,
                count=500_000 if single else 5_000_000,
                seconds=sz.publish_seconds,
                token_prefix=name,
            )
            result = await gen.run(timeout=sz.publish_seconds + 60)
            result["cpu_pressure_pct"] = cpu_pressure()
            step(f"  {name}: {result['events_per_second']:,.0f} events/s")
            return result

        hello_port = hello.port
        for kind in ("single", "batch"):
            step(f"publish ({kind}): hello #1, hookd with 1 and 2 API processes, hello #2")
            results[f"hello-{kind}-1"] = await phase(f"h{kind}1", hello_port, "", kind)
            for n, hookd in servers.items():
                pids = hookd.server_pids()
                cpu0 = sum(proc_cpu_seconds(pid) for pid in pids)
                key = f"hookd-{kind}-{n}api"
                results[key] = await phase(f"p{kind}{n}", hookd.port, hookd.api_key, kind)
                cpu = sum(proc_cpu_seconds(pid) for pid in pids) - cpu0
                results[key]["server_cpu_s"] = round(cpu, 2)
                events = results[key]["events_ok"]
                results[key]["server_cpu_us_per_event"] = (
                    round(cpu / events * 1e6, 1) if events else None
                )
            results[f"hello-{kind}-2"] = await phase(f"h{kind}2", hello_port, "", kind)
        stored = {n: await hookd.count("1 = 1") for n, hookd in servers.items()}
        # how the connections spread: events published by each API process (both kinds)
        spread = {n: await hookd.published_by_api_process() for n, hookd in servers.items()}
    finally:
        hello.stop()
        for hookd in servers.values():
            await hookd.aclose()
    for n in PUBLISH_API_PROCESSES:
        accepted = sum(results[f"hookd-{kind}-{n}api"]["events_ok"] for kind in ("single", "batch"))
        if stored[n] != accepted:
            out.fail(f"{n} API processes: {accepted:,} events accepted, {stored[n]:,} stored")
        if processes[n] != n:
            out.fail(f"hookd serve --api-processes {n} ran {processes[n]} processes")
    for name, result in results.items():
        if result["requests_failed"] or not result["events_ok"]:
            out.fail(f"{name}: {result['requests_failed']} failed requests {result['statuses']}")
    for kind, target in (("single", 10_000), ("batch", 50_000)):
        base_runs = [results[f"hello-{kind}-{i}"]["events_per_second"] for i in (1, 2)]
        what = "single-event requests" if kind == "single" else f"batch route ({sz.batch_size})"
        for n in PUBLISH_API_PROCESSES:
            figure = results[f"hookd-{kind}-{n}api"]["events_per_second"]
            out.rows.append(
                Row(
                    "publish",
                    what if n == 1 else f"{what}, {n} API processes",
                    "events/s",
                    figure,
                    statistics.fmean(base_runs),
                    "hello POST, same stack",
                    target=f"≥ {target:,}/s",
                    met=figure >= target,
                )
            )
        out.details[f"{kind}_baseline_spread_pct"] = spread_pct(base_runs)
    out.details.update(
        {
            "loadgen_processes": procs,
            "api_processes": list(PUBLISH_API_PROCESSES),
            "connections_single": sz.publish_connections,
            "connections_batch": sz.batch_connections,
            "window_s": sz.publish_seconds,
            "deliveries_stored": {str(n): count for n, count in stored.items()},
            "events_by_api_process": {str(n): by for n, by in spread.items() if by},
            "phases": results,
        }
    )
    out.notes.append(
        "hookd serve on SQLite with one endpoint, paused (each event makes one parked delivery; "
        "the worker runs but has nothing due): the figure is the publish path alone, with 1 API "
        "process and with 2 (`--api-processes 2`: the owner and one more on the same socket). "
        "The baseline is bench/hello.py, one process: a FastAPI route that parses the same body "
        "and answers 202, on uvicorn configured as hookd's, measured before and after; the load "
        "generator is bench/loadgen.py (raw keep-alive HTTP/1.1, one request in flight per "
        "connection), sharing the 2 cores with the server."
    )


# --------------------------------------------------------------------------------------------
# 4. latency


async def latency(ctx: Context, out: Outcome) -> None:
    sz = ctx.sizes
    procs = ctx.args.loadgen_procs
    hookd = ctx.hookd("latency")
    loads: list[dict[str, Any]] = []
    try:
        await hookd.start_server("serve")
        await hookd.create_endpoint(ctx.receiver.url, ["order.*"])
        await ctx.receiver.get_json("/arrivals")  # forget earlier arrivals
        received0 = await ctx.receiver.count()
        step(f"latency: maximum single-publish rate ({sz.latency_probe_seconds:g} s, delivering)")
        probe = await LoadGen(
            hookd.port,
            hookd.api_key,
            procs,
            kind="single",
            connections=sz.publish_connections,
            count=500_000,
            seconds=sz.latency_probe_seconds,
            token_prefix="probe",
        ).run(timeout=sz.latency_probe_seconds + 60)
        max_rate = probe["events_per_second"]
        published = probe["events_ok"]
        step(f"  {max_rate:,.0f} events/s; draining")
        drain_s, drained = await wait_delivered(
            hookd,
            ctx.receiver,
            received_target=received0 + published,
            delivered_target=published,
            cap=sz.cap,
        )
        await ctx.receiver.get_json("/arrivals")
        for load in sz.latency_loads:
            rate = max(10.0, max_rate * load)
            step(f"  {load:.0%} of the maximum: {rate:,.0f} events/s for {sz.latency_seconds:g} s")
            accepted_file = hookd.workdir / f"accepted-{int(load * 100)}"
            result = await LoadGen(
                hookd.port,
                hookd.api_key,
                procs,
                kind="single",
                connections=sz.publish_connections,
                count=int(rate * sz.latency_seconds),
                seconds=sz.latency_seconds + 2,
                rate=rate,
                token_prefix=f"l{int(load * 100)}-",
                accepted_out=accepted_file,
            ).run(timeout=sz.latency_seconds + 60)
            accepted: dict[str, float] = result.pop("accepted")
            published += result["events_ok"]
            _, done = await wait_delivered(
                hookd,
                ctx.receiver,
                received_target=received0 + published,
                delivered_target=published,
                cap=min(sz.cap, 30.0),
            )
            arrivals: dict[str, float] = {}
            for token, at in await ctx.receiver.get_json("/arrivals"):
                arrivals.setdefault(token, at)  # a retry would arrive again: keep the first
            lat = [(arrivals[t] - a) * 1000 for t, a in accepted.items() if t in arrivals]
            missing = sum(1 for t in accepted if t not in arrivals)
            if missing or not done:
                out.fail(f"{load:.0%} load: {missing} of {len(accepted):,} events not received")
            loads.append(
                {
                    "load": load,
                    "offered_per_s": round(rate, 1),
                    "achieved_per_s": result["events_per_second"],
                    "events": len(accepted),
                    "missing": missing,
                    "p50_ms": pct(lat, 0.50),
                    "p95_ms": pct(lat, 0.95),
                    "p99_ms": pct(lat, 0.99),
                    "max_ms": max(lat) if lat else None,
                    "negative": sum(1 for x in lat if x < 0),
                    "publish_rtt_ms": result["latency_ms"],
                    "schedule_lag_max_ms": result["schedule_lag_max_ms"],
                }
            )
            last = loads[-1]
            step(
                f"    p50 {fmt(last['p50_ms'], 1)} ms, p99 {fmt(last['p99_ms'], 1)} ms "
                f"({len(lat):,} events)"
            )
    finally:
        await hookd.aclose()
    if not drained:
        out.fail("the probe's deliveries did not drain")
    for row in loads:
        p99 = row["p99_ms"]
        half = math.isclose(row["load"], 0.5)
        out.rows.append(
            Row(
                "latency",
                f"p99 publish accepted → receiver at {row['load']:.0%} load "
                f"({row['offered_per_s']:,.0f}/s)",
                "ms",
                p99,
                row["publish_rtt_ms"]["p99"],
                "p99 publish round trip",
                target="< 50 ms" if half else "-",
                met=(p99 is not None and p99 < 50) if half else None,
                higher_is_better=False,
            )
        )
    out.details = {
        "max_rate_per_s": max_rate,
        "probe": probe,
        "probe_drain_s": round(drain_s, 3),
        "loads": loads,
        "plot": {"kind": "latency"},
    }
    out.notes.append(
        "The maximum is a closed-loop burst of single-event publishes to `hookd serve` with the "
        "worker delivering (one active endpoint → the fast receiver). Each load is open-loop "
        "(bench/loadgen.py --rate). Latency = the receiver's wall-clock arrival time of the "
        "event's first request - the wall-clock time the publish was answered 202 (both "
        "processes on this machine read the same clock). The baseline is the publish round "
        "trip itself (p99, from when the request was due), at the same load."
    )


# --------------------------------------------------------------------------------------------
# 5. fanout


async def fanout(ctx: Context, out: Outcome) -> None:
    sz = ctx.sizes
    levels = sz.fanout_levels
    hookd = ctx.hookd("fanout")
    per_level: list[dict[str, Any]] = []
    try:
        await hookd.start_server("serve")
        step(f"fanout: creating {levels[-1]:,} endpoints")
        created = time.perf_counter()
        next_index = 0

        async def creator() -> None:
            nonlocal next_index
            while next_index < levels[-1]:
                i = next_index
                next_index += 1
                types = [f"fan.l{level}" for level in levels if i < level]
                base = ctx.receiver.url.rsplit("/", 1)[0]
                await hookd.create_endpoint(f"{base}/fan/{i}", types)

        await asyncio.gather(*(creator() for _ in range(8)))
        create_s = time.perf_counter() - created
        delivered_total = 0
        for level in levels:
            events = max(sz.fanout_single_publishes, math.ceil(sz.fanout_deliveries / level))
            deliveries = events * level
            received0 = await ctx.receiver.count()
            started = time.perf_counter()
            single_ms: list[float] = []
            for _ in range(sz.fanout_single_publishes):
                t0 = time.perf_counter()
                result = await hookd.call(
                    "POST",
                    "/v1/events",
                    {"type": f"fan.l{level}", "payload": e2e.make_payload(0, PAYLOAD_BYTES)},
                )
                single_ms.append((time.perf_counter() - t0) * 1000)
                if result["deliveries"] != level:
                    out.fail(f"an event of fan.l{level} made {result['deliveries']} deliveries")
            rest = events - sz.fanout_single_publishes
            batch = max(1, min(1000, 2000 // level))
            if rest:
                await hookd.publish_many(rest, f"fan.l{level}", batch=batch)
            publish_s = time.perf_counter() - started
            delivered_total += deliveries
            _, ok = await wait_delivered(
                hookd,
                ctx.receiver,
                received_target=received0 + deliveries,
                delivered_target=delivered_total,
                cap=sz.cap,
            )
            seconds = time.perf_counter() - started
            if not ok:
                out.fail(f"{level} endpoints: not all {deliveries:,} delivered within the cap")
            per_level.append(
                {
                    "endpoints": level,
                    "events": events,
                    "deliveries": deliveries,
                    "seconds": round(seconds, 3),
                    "deliveries_per_s": round(deliveries / seconds, 1),
                    "publish_seconds": round(publish_s, 3),
                    "single_publish_ms_median": round(statistics.median(single_ms), 2),
                    "single_publish_ms_max": round(max(single_ms), 2),
                    "batch_size": batch,
                }
            )
            step(
                f"  1 → {level:,}: {deliveries / seconds:,.0f} deliveries/s, publish "
                f"{statistics.median(single_ms):.1f} ms"
            )
    finally:
        await hookd.aclose()
    if per_level:
        one = per_level[0]
        for row in per_level[1:]:
            out.rows.append(
                Row(
                    "fanout",
                    f"1 → {row['endpoints']:,} endpoints",
                    "deliveries/s",
                    row["deliveries_per_s"],
                    one["deliveries_per_s"],
                    "1 → 1 endpoint",
                )
            )
        last = per_level[-1]
        out.rows.append(
            Row(
                "fanout",
                f"publish latency, 1 event → {last['endpoints']:,} endpoints",
                "ms (median)",
                last["single_publish_ms_median"],
                one["single_publish_ms_median"],
                "1 → 1 endpoint",
                higher_is_better=False,
            )
        )
    out.details = {"endpoint_create_s": round(create_s, 2), "levels": per_level}
    out.notes.append(
        f"{levels[-1]:,} endpoints on the fast receiver (distinct paths); endpoint i subscribes to "
        "`fan.lL` for every level L > i, so an event of `fan.lL` goes to exactly L endpoints. "
        f"Per level: {sz.fanout_single_publishes} single-event publishes (their latency), then "
        f"the batch route up to ~{sz.fanout_deliveries:,} deliveries; deliveries/s from the "
        "first publish until all are delivered."
    )


# --------------------------------------------------------------------------------------------
# 6. backlog


def insert_backlog(db: Path, first: int, count: int) -> float:
    """Add `count` due deliveries (copies of the one real delivery, fresh ids) in one
    transaction, straight into SQLite with hookd stopped; returns the seconds it took."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        tenant, event_id, endpoint_id, event_type = conn.execute(
            "SELECT tenant_id, event_id, endpoint_id, event_type FROM deliveries LIMIT 1"
        ).fetchone()
        now = time.time()
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE g(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM g WHERE x < ?2) "
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, "
            "next_attempt_at, created_at, updated_at) "
            "SELECT printf('dlv_bench%012d', x), ?3, ?4, ?5, ?6, 'pending', ?7 + x * 1e-6, ?7, ?7 "
            "FROM g",
            (first, first + count - 1, tenant, event_id, endpoint_id, event_type, now - 3600),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


async def time_claims(hookd: Hookd, claims: int) -> list[float]:
    """`store.claim(limit=256)` timed `claims` times (after 3 untimed), in this process, with
    hookd stopped."""
    from hookd.store.sqlite import SqliteStore

    store = SqliteStore(hookd.db_path, crypto.SecretBox(hookd.secret_key))
    await store.open()
    times: list[float] = []
    try:
        for _ in range(3):  # warm-up, not timed: the page cache and the statement cache
            await store.claim(
                worker_id="bench-claim", limit=256, now=time.time(), lease_seconds=300
            )
        for _ in range(claims):
            t0 = time.perf_counter()
            got = await store.claim(
                worker_id="bench-claim", limit=256, now=time.time(), lease_seconds=300
            )
            times.append((time.perf_counter() - t0) * 1000)
            if len(got) != 256:
                raise RuntimeError(f"a claim took {len(got)} deliveries, not 256")
    finally:
        await store.close()
    return times


async def sample_rss(pid: int, seconds: float) -> tuple[float, float]:
    """(first, peak) RSS in MB over `seconds`, sampled every 50 ms."""
    first = proc_rss_mb(pid) or 0.0
    peak = first
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        peak = max(peak, proc_rss_mb(pid) or 0.0)
        await asyncio.sleep(0.05)
    return first, peak


async def backlog(ctx: Context, out: Outcome) -> None:
    sz = ctx.sizes
    step("backlog: RSS of the bare HTTP stack (bench/hello.py) and of an idle hookd serve")
    hello = ReadyLine(HERE / "hello.py", ["--port", "0"])
    try:
        await asyncio.sleep(1.0)
        hello_rss = proc_rss_mb(hello.proc.pid)
    finally:
        hello.stop()
    hookd = ctx.hookd("backlog")
    sizes: list[dict[str, Any]] = []
    try:
        await hookd.start_server("serve")
        assert hookd.server is not None
        await asyncio.sleep(1.0)
        _, idle_rss = await sample_rss(hookd.server.pid, 1.0)
        await hookd.create_endpoint(ctx.receiver.url, ["order.*"])
        await hookd.call("POST", "/v1/events", {"type": EVENT_TYPE, "payload": {"n": 0}})
        await wait_delivered(hookd, ctx.receiver, received_target=0, delivered_target=1, cap=sz.cap)
        hookd.stop_server()
        inserted = 0
        for target in sz.backlogs:
            pending = await hookd.count("status IN ('pending', 'sending')")
            add = max(0, target - pending)
            step(f"  backlog {target:,}: inserting {add:,} due deliveries")
            insert_s = await asyncio.to_thread(insert_backlog, hookd.db_path, inserted, add)
            inserted += add
            claims = await time_claims(hookd, sz.claims)
            received0 = await ctx.receiver.count()
            startup = await hookd.start_server("serve")
            assert hookd.server is not None
            start_rss, peak_rss = await sample_rss(hookd.server.pid, sz.backlog_window)
            drained = await ctx.receiver.count() - received0
            hookd.stop_server()
            sizes.append(
                {
                    "backlog": target,
                    "inserted": add,
                    "insert_s": round(insert_s, 2),
                    "claim_ms_median": round(statistics.median(claims), 3),
                    "claim_ms_p95": round(pct(claims, 0.95) or 0.0, 3),
                    "claim_ms_first": round(claims[0], 3),
                    "serve_startup_s": round(startup, 3),
                    "rss_mb_at_ready": round(start_rss, 1),
                    "rss_mb_peak": round(peak_rss, 1),
                    "delivered_in_window": drained,
                    "deliveries_per_s_in_window": round(drained / sz.backlog_window, 1),
                }
            )
            step(
                f"    claim median {statistics.median(claims):.2f} ms, RSS peak {peak_rss:.0f} MB,"
                f" {drained / sz.backlog_window:,.0f} deliveries/s"
            )
    finally:
        await hookd.aclose()
    out.rows.append(
        Row(
            "backlog",
            "RSS of hookd serve, idle",
            "MB",
            idle_rss,
            hello_rss,
            "bare FastAPI/uvicorn",
            target="< 100 MB",
            met=idle_rss < 100,
            higher_is_better=False,
        )
    )
    if sizes:
        small, big = sizes[0], sizes[-1]
        full = big["backlog"] >= 1_000_000
        out.rows.append(
            Row(
                "backlog",
                f"RSS of hookd serve, {big['backlog']:,} pending (peak while delivering)",
                "MB",
                big["rss_mb_peak"],
                idle_rss,
                "idle",
                target="< 200 MB at 1M" if full else "(1M in full runs)",
                met=big["rss_mb_peak"] < 200 if full else None,
                higher_is_better=False,
            )
        )
        ratio = big["claim_ms_median"] / small["claim_ms_median"]
        out.rows.append(
            Row(
                "backlog",
                f"claim of 256 at {big['backlog']:,} pending (median)",
                "ms",
                big["claim_ms_median"],
                small["claim_ms_median"],
                f"at {small['backlog']:,}",
                target="≤ 1.5x at 1M" if full else "(1M in full runs)",
                met=ratio <= 1.5 if full else None,
                higher_is_better=False,
            )
        )
        if not full:
            out.notes.append(
                f"Quick run: the largest backlog is {big['backlog']:,}, not 1,000,000; the "
                "targets at 1M are not judged."
            )
    out.details = {"hello_rss_mb": hello_rss, "idle_rss_mb": idle_rss, "sizes": sizes}
    out.notes.append(
        "Backlogs are inserted straight into SQLite (copies of one real delivery, due, one "
        "transaction) with hookd stopped; then `SqliteStore.claim(limit=256)` is timed in this "
        f"process ({sz.claims} claims), then `hookd serve` starts on it and delivers to the fast "
        f"receiver for {sz.backlog_window:g} s while its RSS is sampled (at ready, and the "
        "peak). Sizes are cumulative: each tops the same database up to the next size."
    )


# --------------------------------------------------------------------------------------------
# 7. slow receivers


async def slow(ctx: Context, out: Outcome) -> None:
    sz = ctx.sizes
    receiver = e2e.Receiver(uvloop=True, extra_args=("--delay", str(sz.slow_delay)))
    receiver.start()
    levels: list[dict[str, Any]] = []
    try:
        for concurrency in sz.slow_levels:
            n = concurrency * sz.slow_rounds
            hookd = ctx.hookd(f"slow-{concurrency}", concurrency=concurrency)
            try:
                await hookd.start_server("serve")
                assert hookd.server is not None
                endpoint = await hookd.create_endpoint(receiver.url, ["order.*"], paused=True)
                await hookd.publish_many(n)
                stats0 = await receiver.get_json("/stats")
                cpu0 = proc_cpu_seconds(hookd.server.pid)
                started = time.perf_counter()
                await hookd.call("POST", f"/v1/endpoints/{endpoint}/resume")
                _, ok = await wait_delivered(
                    hookd,
                    receiver,
                    received_target=stats0["count"] + n,
                    delivered_target=n,
                    cap=sz.cap,
                )
                seconds = time.perf_counter() - started
                cpu = proc_cpu_seconds(hookd.server.pid) - cpu0
                rss = proc_rss_mb(hookd.server.pid)
                stats = await receiver.get_json("/stats")
                delivered = await hookd.delivered()
            finally:
                await hookd.aclose()
            if not ok:
                out.fail(f"concurrency {concurrency}: {delivered:,}/{n:,} delivered in the cap")
            ideal = concurrency / sz.slow_delay
            levels.append(
                {
                    "concurrency": concurrency,
                    "deliveries": n,
                    "delivered": delivered,
                    "seconds": round(seconds, 3),
                    "per_second": round(delivered / seconds, 1),
                    "ideal_per_second": ideal,
                    "ideal_seconds": round(n / ideal, 3),
                    "max_held_at_receiver": stats["max_held"],
                    "connections_opened": stats["connections"] - stats0["connections"],
                    "hookd_cpu_s": round(cpu, 2),
                    "hookd_rss_mb": rss,
                }
            )
            step(
                f"slow: concurrency {concurrency:,}: {delivered / seconds:,.0f} deliveries/s "
                f"(ideal {ideal:,.0f}), {stats['max_held']:,} in flight at most"
            )
            # the receiver's max_held is a high-water mark: restart it for the next level
            await receiver.aclose()
            receiver.stop()
            receiver = e2e.Receiver(uvloop=True, extra_args=("--delay", str(sz.slow_delay)))
            receiver.start()
    finally:
        await receiver.aclose()
        receiver.stop()
    previous: float | None = None
    for level in levels:
        collapse_ok = previous is None or level["per_second"] >= 0.9 * previous
        out.rows.append(
            Row(
                "slow",
                f"{level['concurrency']:,} in flight, receiver {sz.slow_delay:g} s",
                "deliveries/s",
                level["per_second"],
                level["ideal_per_second"],
                "ideal: concurrency / latency",
                target="no collapse (≥ 0.9x the level below)" if previous is not None else "-",
                met=collapse_ok if previous is not None else None,
            )
        )
        previous = level["per_second"]
    out.details = {"delay_s": sz.slow_delay, "levels": levels}
    out.notes.append(
        f"A receiver that answers every request after {sz.slow_delay:g} s (bench/receiver.py "
        "--delay, one timer per request). Per level C: a fresh `hookd serve` with "
        "HOOKD_WORKER_CONCURRENCY = HOOKD_ENDPOINT_MAX_IN_FLIGHT = C, "
        f"{sz.slow_rounds} x C events published to a paused endpoint, then resumed; the clock "
        "runs until all are delivered. Ideal = C / latency; `max_held_at_receiver` is how many "
        "requests the receiver held at once (the in-flight reached)."
    )


# --------------------------------------------------------------------------------------------
# plots


def plot(outcomes: dict[str, Outcome], out_dir: Path, suffix: str) -> list[str]:
    """PNG curves for the scenarios that have one; [] (and a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        step("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / f"{name}{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)

    if (o := outcomes.get("slow")) and o.details.get("levels"):
        levels = o.details["levels"]
        xs = [lv["concurrency"] for lv in levels]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        ax.plot(xs, [lv["per_second"] for lv in levels], "o-", label="hookd serve")
        ax.plot(xs, [lv["ideal_per_second"] for lv in levels], "--", label="ideal (C / 1 s)")
        ax.plot(
            xs,
            [lv["max_held_at_receiver"] / o.details["delay_s"] for lv in levels],
            "s:",
            label="most in flight at the receiver / latency",
        )
        ax.set(
            xlabel="worker concurrency (requests in flight)",
            ylabel="deliveries/s",
            title=f"Slow receivers ({o.details['delay_s']:g} s): throughput vs concurrency",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "slow")
    if (o := outcomes.get("latency")) and o.details.get("loads"):
        loads = o.details["loads"]
        xs = [lv["offered_per_s"] for lv in loads]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for q in ("p50", "p95", "p99"):
            ax.plot(xs, [lv[f"{q}_ms"] for lv in loads], "o-", label=q)
        ax.axhline(50, color="red", linestyle=":", label="p99 target (50 ms)")
        ax.set(
            xlabel="offered load (events/s)",
            ylabel="publish accepted → receiver (ms)",
            title="Added latency vs load",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "latency")
    if (o := outcomes.get("backlog")) and o.details.get("sizes"):
        sizes = o.details["sizes"]
        xs = [1] + [s["backlog"] for s in sizes]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        idle = o.details["idle_rss_mb"]
        ax.plot(xs, [idle] + [s["rss_mb_peak"] for s in sizes], "o-", label="RSS peak")
        ax.plot(xs, [idle] + [s["rss_mb_at_ready"] for s in sizes], "s--", label="RSS at ready")
        ax.axhline(200, color="red", linestyle=":", label="target at 1M (200 MB)")
        ax.set_xscale("log")
        ax.set(
            xlabel="pending deliveries (1 = idle)",
            ylabel="RSS of hookd serve (MB)",
            title="Memory vs backlog",
        )
        ax2 = ax.twinx()
        ax2.plot(
            [s["backlog"] for s in sizes],
            [s["claim_ms_median"] for s in sizes],
            "^:",
            color="gray",
            label="claim of 256 (ms)",
        )
        ax2.set_ylabel("claim of 256, median (ms)")
        ax2.set_ylim(bottom=0, top=max(s["claim_ms_median"] for s in sizes) * 2.5)
        ax.set_ylim(bottom=0, top=max(250.0, max(s["rss_mb_peak"] for s in sizes) * 1.2))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        ax2.legend(loc="lower right")
        save(fig, "backlog")
    if (o := outcomes.get("fanout")) and o.details.get("levels"):
        levels = o.details["levels"]
        xs = [lv["endpoints"] for lv in levels]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        ax.plot(xs, [lv["deliveries_per_s"] for lv in levels], "o-", label="deliveries/s")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0, top=max(lv["deliveries_per_s"] for lv in levels) * 1.2)
        ax.set(xlabel="endpoints per event", ylabel="deliveries/s", title="Fan-out")
        ax2 = ax.twinx()
        ax2.plot(
            xs,
            [lv["single_publish_ms_median"] for lv in levels],
            "^:",
            color="gray",
            label="publish latency (ms)",
        )
        ax2.set_ylabel("single publish, median (ms)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        ax2.legend(loc="upper right")
        save(fig, "fanout")
    return made


# --------------------------------------------------------------------------------------------
# main

RUNNERS: dict[str, Callable[[Context, Outcome], Awaitable[None]]] = {
    "e2e-sqlite": e2e_sqlite,
    "e2e-postgres": e2e_postgres,
    "publish": publish,
    "latency": latency,
    "fanout": fanout,
    "backlog": backlog,
    "slow": slow,
}


def suite_markdown(
    outcomes: dict[str, Outcome], meta: dict[str, Any], plots: list[str], seconds: float
) -> str:
    rows = [r for o in outcomes.values() for r in o.rows]
    out = [
        f"# hookd benchmark suite — {meta['started_at']}",
        "",
        f"`{meta['command']}` · {'quick' if meta['quick'] else 'full'} run · client "
        f"{meta['client']} · {seconds:.0f} s · git {meta['machine'].get('git_commit')}",
        "",
        *rows_table(rows, with_scenario=True),
        "",
        "Every baseline was measured in this run, on this machine; ratio = hookd / baseline "
        "(for ms and MB rows, lower is better). `met?` judges the issue's target; `-`: no target "
        "for that row. Details per scenario: `latest-<scenario>"
        + ("-quick" if meta["quick"] else "")
        + ".md`.",
        "",
        "| scenario | seconds | complete |",
        "| --- | ---: | --- |",
    ]
    for o in outcomes.values():
        status = "yes" if o.complete else "**no**: " + "; ".join(o.problems)
        out.append(f"| {o.name} | {o.seconds:.1f} | {status} |")
    out.append("")
    if plots:
        out += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    m = meta["machine"]
    out += [
        "## Machine",
        "",
        f"{m.get('cpus_usable')} CPUs ({m.get('cpu_model')}), load at start "
        f"{m.get('load_avg_at_start')}, Python {m.get('python')}, aiohttp {m.get('aiohttp')}, "
        f"SQLite {m.get('sqlite')}, {m.get('event_loop')}",
        "",
    ]
    return "\n".join(out)


async def run(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Outcome]:
    sizes = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="hookd-suite-", dir=args.tmpdir))
    receiver = e2e.Receiver(uvloop=True, extra_args=("--record",))
    receiver.start()
    ctx = Context(args=args, sizes=sizes, client=args.client, receiver=receiver, workdir=workdir)
    outcomes: dict[str, Outcome] = {}
    suffix = "-quick" if args.quick else ""
    try:
        for name in args.scenarios:
            outcome = Outcome(name)
            started = time.perf_counter()
            try:
                await asyncio.wait_for(RUNNERS[name](ctx, outcome), args.scenario_timeout)
            except Exception as exc:  # a failed scenario is reported, the others still run
                outcome.fail(f"{type(exc).__name__}: {exc}")
                step(f"{name} FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
            outcome.seconds = time.perf_counter() - started
            outcomes[name] = outcome
            text = scenario_markdown(outcome, meta)
            print("\n".join(rows_table(outcome.rows, with_scenario=True)), flush=True)
            base = args.out / f"{name}-{meta['stamp']}{suffix}"
            payload = {
                **meta,
                "scenario": name,
                "sizes": dataclasses.asdict(sizes),
                "seconds": round(outcome.seconds, 2),
                "complete": outcome.complete,
                "problems": outcome.problems,
                "failure_log": outcome.log,
                "rows": [r.as_dict() for r in outcome.rows],
                "details": outcome.details,
                "notes": outcome.notes,
            }
            base.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
            base.with_suffix(".md").write_text(text)
            (args.out / f"latest-{name}{suffix}.md").write_text(text)
    finally:
        with contextlib.suppress(Exception):
            await receiver.aclose()
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return outcomes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma list of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument(
        "--client",
        choices=["aiohttp", "native"],
        default="native",
        help="hookd's HTTP client (HOOKD_HTTP_CLIENT) and the baseline loop's (default native)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("HOOKD_TEST_POSTGRES_URL", DEFAULT_PG_URL),
        help="PostgreSQL for e2e-postgres (a throw-away schema is made and dropped)",
    )
    parser.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--scenario-timeout", type=float, default=None, help="seconds per scenario at most"
    )
    parser.add_argument("--tmpdir", default=None, help="where the temporary databases go")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        parser.error(f"unknown scenarios: {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.scenarios = [s for s in SCENARIOS if s in names]  # the documented order
    if args.loadgen_procs < 1:
        parser.error("--loadgen-procs must be at least 1")
    if args.scenario_timeout is None:
        args.scenario_timeout = 60.0 if args.quick else 240.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    runner: Callable[[Coroutine[Any, Any, dict[str, Outcome]]], dict[str, Outcome]] = asyncio.run
    loop_name = "asyncio"
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
        loop_name = f"uvloop {getattr(uvloop, '__version__', '?')}"
    now = datetime.datetime.now(datetime.UTC)
    meta: dict[str, Any] = {
        "started_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stamp": now.strftime("%Y%m%dT%H%M%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "quick": args.quick,
        "client": args.client,
        "machine": e2e.machine_info(loop_name),
    }
    started = time.perf_counter()
    outcomes = runner(run(args, meta))
    suffix = "-quick" if args.quick else ""
    plots = plot(outcomes, args.out, suffix)
    seconds = time.perf_counter() - started
    text = suite_markdown(outcomes, meta, plots, seconds)
    (args.out / f"latest-suite{suffix}.md").write_text(text)
    print(text)
    step(f"suite done in {seconds:.0f} s; wrote {args.out}/latest-suite{suffix}.md")
    return 0 if all(o.complete for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
