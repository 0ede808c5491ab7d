"""PostgreSQL restarts under a running `hookd serve`: nothing accepted is lost.

Events are published continuously while the server is restarted (`pg_ctlcluster … restart`).
Publishes during the outage are refused (503), never half-accepted; `/readyz` answers 503 while
the database is away; afterwards the pool and the LISTEN connection reconnect and every event
that got a 202 is delivered.

Needs root and pg_ctlcluster (the local test server); skipped otherwise, unless
HOOKD_REQUIRE_POSTGRES=1. Restarting the server drops every connection to it, including those
of anything else using it at that moment.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from support import postgres
from support.receiver import Receiver, Reply
from support.server import ServeProcess

pytestmark = pytest.mark.slow

BEFORE = 600  # events accepted before the restart
AFTER = 600  # events accepted after it


def cluster() -> tuple[str, str]:
    """(version, name) of the local cluster, e.g. ("15", "main"), from pg_lsclusters."""
    out = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    version, name = out.split()[:2]
    return version, name


def restart_postgres() -> float:
    """Restart the local server; returns how long the command took (seconds)."""
    version, name = cluster()
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.monotonic() - started


@pytest.fixture
def restartable(postgres_schema: postgres.Schema) -> postgres.Schema:
    reason = postgres.can_restart_server()
    if reason is not None:
        if postgres.required():
            pytest.fail(f"HOOKD_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return postgres_schema


async def test_a_database_restart_loses_nothing_accepted(
    tmp_path: Path, restartable: postgres.Schema
) -> None:
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=0.01)) as receiver:
        server = ServeProcess(
            tmp_path,
            HOOKD_DATABASE_URL=restartable.url,
            HOOKD_DATABASE_SCHEMA=restartable.name,
            HOOKD_WORKER_CONCURRENCY="32",
            HOOKD_DEFAULT_TIMEOUT="3",
            HOOKD_MAX_TIMEOUT="3",
            HOOKD_LEASE_SECONDS="6",
            HOOKD_RATE_LIMIT_PER_KEY="off",
            HOOKD_RATE_LIMIT_PER_IP="off",
        )
        accepted: list[int] = []
        refused = 0
        readiness: list[int] = []
        stop = asyncio.Event()
        try:
            await server.start()
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    server.url + "/v1/endpoints",
                    json={"url": receiver.url, "event_types": ["order.*"]},
                    headers=server.headers,
                ) as response:
                    assert response.status == 201, await response.text()

                async def publisher(first: int) -> None:
                    nonlocal refused
                    i = first
                    while not stop.is_set() and i < first + 100_000:  # bounded
                        try:
                            async with session.post(
                                server.url + "/v1/events",
                                json={"type": "order.filled", "payload": {"i": i}},
                                headers=server.headers,
                                timeout=aiohttp.ClientTimeout(total=15),
                            ) as response:
                                if response.status == 202:
                                    accepted.append(i)
                                else:
                                    assert response.status == 503, await response.text()
                                    refused += 1
                        except (aiohttp.ClientError, TimeoutError):
                            refused += 1
                        i += 8
                        await asyncio.sleep(0.005)

                async def probe() -> None:
                    while not stop.is_set():
                        try:
                            async with session.get(
                                server.url + "/readyz", timeout=aiohttp.ClientTimeout(total=5)
                            ) as response:
                                readiness.append(response.status)
                        except (aiohttp.ClientError, TimeoutError):
                            readiness.append(0)
                        await asyncio.sleep(0.05)

                tasks = [asyncio.create_task(publisher(k)) for k in range(8)]
                tasks.append(asyncio.create_task(probe()))
                deadline = time.monotonic() + 60
                while len(accepted) < BEFORE:
                    assert time.monotonic() < deadline, "publishing is too slow"
                    await asyncio.sleep(0.05)
                took = await asyncio.to_thread(restart_postgres)
                restarted_with = len(accepted)
                deadline = time.monotonic() + 90
                while len(accepted) < restarted_with + AFTER:
                    assert time.monotonic() < deadline, "publishing did not resume"
                    await asyncio.sleep(0.05)
                stop.set()
                await asyncio.gather(*tasks)

            wanted = set(accepted)
            await receiver.wait_for(
                lambda: wanted <= {r.json()["data"]["i"] for r in receiver.requests},
                timeout=120,
            )
            assert server.terminate() == 0, server.log.read_text()
        finally:
            stop.set()
            server.ensure_stopped()
    # best effort: the probe ran every 50 ms through an outage of about `took` seconds
    assert 503 in readiness, f"/readyz never said 503 (restart took {took:.1f} s): {readiness}"
    assert readiness[-1] == 200
    print(f"restart took {took:.1f} s; {len(accepted)} accepted, {refused} refused meanwhile")
