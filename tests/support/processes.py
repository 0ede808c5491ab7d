"""Helpers of the tests that run hookd's process families (worker and API processes): the
processes under /proc, /metrics samples, readiness, the database's deliveries by status."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from support import postgres
from support.server import ServeProcess

WORKER_MODULE = "hookd.delivery.helper"
API_MODULE = "hookd.api.helper"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (every thread's, from /proc)."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found |= {int(p) for p in (task / "children").read_text().split()}
    return {p for p in found if alive(p)}


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for its parent to reap it, has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def helpers_of(pid: int, module: str = WORKER_MODULE) -> set[int]:
    """The helper processes running `module` that `pid` started (default: worker processes)."""
    return {child for child in children(pid) if module in cmdline(child)}


async def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_gone(pids: Iterable[int], timeout: float) -> float:
    """Wait until none of `pids` runs; how long that took (seconds)."""
    started = time.monotonic()
    pids = set(pids)
    await wait_until(lambda: not any(alive(p) for p in pids), timeout, f"{pids} to exit")
    return time.monotonic() - started


def kill_left_over(pids: Iterable[int]) -> None:
    """After a failed test: the helper processes it made must not outlive it."""
    for pid in pids:
        if alive(pid) and any(m in cmdline(pid) for m in (WORKER_MODULE, API_MODULE)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def scrape(session: aiohttp.ClientSession, server: ServeProcess) -> Samples:
    async with session.get(server.url + "/metrics", headers=server.headers) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples that have `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(ls)[label]: v for (n, ls), v in samples.items() if n == name}


async def readyz(session: aiohttp.ClientSession, server: ServeProcess) -> int:
    try:
        async with session.get(server.url + "/readyz") as response:
            return response.status
    except aiohttp.ClientError:
        return 0


def statuses(db: Path) -> dict[str, int]:
    """Deliveries by status, read from the database beside the running processes."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
    finally:
        conn.close()


class Hookd:
    """`python -m hookd <args>` with its own log."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str], *args: str) -> None:
        self.args = args
        self.log = tmp / f"{name}.log"
        self.env = {**env, "HOOKD_CONFIG_DIR": str(tmp / f"config-{name}")}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hookd", *self.args], env=self.env, stdout=log, stderr=log
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def readyz_url(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url + "/readyz") as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def wait_pg_delivered(schema: postgres.Schema, count: int, timeout: float) -> None:
    conn = await asyncpg.connect(schema.url, server_settings={"search_path": schema.name})
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
            by_status: dict[str, int] = {row[0]: row[1] for row in rows}
            if by_status == {"delivered": count}:
                return
            assert time.monotonic() < deadline, f"deliveries by status: {by_status}"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
