"""An endpoint's rate limit holds across worker processes: 3 `hookd worker` processes on one
PostgreSQL database deliver to an endpoint limited to 50/s; over a 10 s window of steady flow
the receiver sees 50 requests a second, within 10%."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from support import postgres
from support.receiver import Receiver
from support.server import ADMIN_KEY, free_port

pytestmark = pytest.mark.slow

RATE = 50
EVENTS = 1000  # 20 s of flow at 50/s
WINDOW = (3.0, 13.0)  # seconds after the first request: past the burst, before the backlog ends


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hookd", *command], env=env, stdout=out, stderr=out
        )


async def wait_for_log(proc: subprocess.Popen[bytes], log: Path, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.1)


async def wait_ready(
    session: aiohttp.ClientSession, proc: subprocess.Popen[bytes], url: str, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


async def test_rate_limit_holds_across_three_worker_processes(
    tmp_path: Path, postgres_schema: postgres.Schema
) -> None:
    port = free_port()
    env = postgres.migrated_env(postgres_schema, ADMIN_KEY)
    procs: list[subprocess.Popen[bytes]] = []
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    api = f"http://127.0.0.1:{port}"
    async with Receiver() as receiver, aiohttp.ClientSession() as session:
        try:
            for n in range(3):
                env_n = {**env, "HOOKD_CONFIG_DIR": str(tmp_path / f"config-w{n}")}
                log = tmp_path / f"worker{n}.log"
                procs.append(spawn(["worker"], env_n, log))
                await wait_for_log(procs[-1], log, "hookd worker")
            api_log = tmp_path / "api.log"
            procs.append(spawn(["api", "--port", str(port)], env, api_log))
            await wait_ready(session, procs[-1], api + "/readyz", api_log)
            async with session.post(
                api + "/v1/endpoints",
                json={
                    "url": receiver.url,
                    "event_types": ["*"],
                    "rate_limit": {"per_second": RATE, "burst": RATE},
                },
                headers=headers,
            ) as response:
                assert response.status == 201, await response.text()
            for first in range(0, EVENTS, 100):
                batch = [{"type": "tick", "payload": {"i": i}} for i in range(first, first + 100)]
                async with session.post(
                    api + "/v1/events/batch", json={"events": batch}, headers=headers
                ) as response:
                    assert response.status in (200, 202, 207), await response.text()
            deadline = time.monotonic() + 60
            while (
                not receiver.requests
                or receiver.requests[-1].at - receiver.requests[0].at < WINDOW[1] + 0.5
            ):
                assert time.monotonic() < deadline, f"{len(receiver.requests)} requests"
                await asyncio.sleep(0.2)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    times = sorted(r.at for r in receiver.requests)
    start = times[0]
    counts = [
        sum(1 for t in times if start + s <= t < start + s + 1.0)
        for s in range(int(WINDOW[0]), int(WINDOW[1]))
    ]
    in_window = sum(1 for t in times if start + WINDOW[0] <= t < start + WINDOW[1])
    rate = in_window / (WINDOW[1] - WINDOW[0])
    print(f"{rate:.1f} requests/s over the window; per second: {counts}")
    assert RATE * 0.9 <= rate <= RATE * 1.1, counts
    assert len({r.id for r in receiver.requests}) == len(receiver.requests)  # none sent twice
