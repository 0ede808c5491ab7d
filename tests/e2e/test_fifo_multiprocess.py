"""FIFO across processes on PostgreSQL: 2 `hookd worker` processes share one FIFO endpoint.

Events published one after another reach the receiver in publish order, one request at a time,
even though some of them fail and are retried, while both workers claim from the same queue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from test_multiprocess import HookdProcess, wait_until

from support import postgres
from support.receiver import Received, Receiver, Reply
from support.server import ADMIN_KEY

pytestmark = pytest.mark.slow

EVENTS = 120


async def test_fifo_order_holds_with_two_worker_processes(
    tmp_path: Path, postgres_schema: postgres.Schema
) -> None:
    env = postgres.migrated_env(postgres_schema, ADMIN_KEY)
    in_flight = 0
    most_in_flight = 0

    async def script(request: Received, _n: int, k: int) -> Reply:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await asyncio.sleep(0.005)
        finally:
            in_flight -= 1
        i = request.json()["data"]["i"]
        return Reply(500 if i % 10 == 3 and k == 1 else 200)  # every 10th fails once

    api = HookdProcess("api", tmp_path, "api", env)
    workers = [HookdProcess("worker", tmp_path, f"worker{i}", env) for i in range(2)]
    processes = [api, *workers]
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with Receiver(script) as receiver, aiohttp.ClientSession() as session:
        try:
            for process in processes:
                process.start()
            for process in processes:
                await process.wait_ready(session)
            endpoint = {
                "url": receiver.url,
                "event_types": ["*"],
                "ordering": "fifo",
                "retry_policy": {"kind": "schedule", "delays": [0, 0.1, 0.1], "jitter": 0},
            }
            async with session.post(
                api.url + "/v1/endpoints", json=endpoint, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
            for i in range(EVENTS):  # one after another: publish order is defined
                async with session.post(
                    api.url + "/v1/events",
                    json={"type": "order.filled", "payload": {"i": i}},
                    headers=headers,
                ) as response:
                    assert response.status == 202, await response.text()
            expected = EVENTS + EVENTS // 10  # every 10th was sent twice
            await wait_until(lambda: len(receiver.requests) >= expected, 120, "deliveries")
            await asyncio.sleep(0.5)  # anything out of turn would arrive now
            for process in processes:
                assert process.terminate() == 0, process.log.read_text()
        finally:
            for process in processes:
                process.ensure_stopped()
    seen = [r.json()["data"]["i"] for r in receiver.requests]
    assert len(seen) == expected
    retried = [i for i in range(EVENTS) if i % 10 == 3]
    assert sorted(seen) == sorted([*range(EVENTS), *retried])
    # each event after the one before it was delivered: its retries (if any) come right after it
    first_seen: list[int] = []
    for i in seen:
        if not first_seen or first_seen[-1] != i:
            first_seen.append(i)
    assert first_seen == list(range(EVENTS)), seen
    assert most_in_flight == 1
