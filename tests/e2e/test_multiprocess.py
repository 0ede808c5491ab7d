"""Scale-out on PostgreSQL: 2 `hookd api` + 3 `hookd worker` processes on one database.

Round 1: 10,000 events published through both APIs at once are all delivered, each exactly once.
Round 2: one worker is SIGKILLed mid-flight; every event is still delivered, and the only
deliveries sent twice are ones the killed worker held a lease on, each time with the same
`webhook-id`.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from hookd.policy import signing
from support import postgres
from support.receiver import Receiver, Reply
from support.server import ADMIN_KEY, free_port

pytestmark = pytest.mark.slow

ROUND_1 = 10_000
ROUND_2 = 4_000
LEASE_SECONDS = 6.0


class HookdProcess:
    """`python -m hookd <command>` with its own log; `api` processes get a free port."""

    def __init__(self, command: str, tmp: Path, name: str, env: dict[str, str]) -> None:
        self.command = command
        self.port = free_port() if command == "api" else None
        self.log = tmp / f"{name}.log"
        self.env = {**env, "HOOKD_CONFIG_DIR": str(tmp / f"config-{name}")}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "hookd", self.command]
        if self.port is not None:
            cmd += ["--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hookd {self.command} exited:\n{self.log.read_text()}")
            if self.port is None:
                if "hookd worker" in self.log.read_text():  # printed once the engine is open
                    return
            else:
                try:
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"hookd {self.command} did not become ready:\n{self.log.read_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def publish(
    session: aiohttp.ClientSession, apis: list[HookdProcess], first: int, count: int
) -> None:
    """Events first..first+count-1, alternating between the APIs, 64 requests at a time."""
    gate = asyncio.Semaphore(64)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def one(i: int) -> None:
        api = apis[i % len(apis)]
        async with (
            gate,
            session.post(
                api.url + "/v1/events",
                json={"type": "order.filled", "payload": {"i": i}},
                headers=headers,
            ) as response,
        ):
            assert response.status == 202, await response.text()

    await asyncio.gather(*(one(i) for i in range(first, first + count)))


def event_numbers(receiver: Receiver) -> set[int]:
    return {r.json()["data"]["i"] for r in receiver.requests}


async def wait_until(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_two_apis_and_three_workers_on_one_database(
    tmp_path: Path, postgres_schema: postgres.Schema
) -> None:
    env = postgres.migrated_env(
        postgres_schema,
        ADMIN_KEY,
        HOOKD_WORKER_CONCURRENCY="64",
        HOOKD_DEFAULT_TIMEOUT="3",
        HOOKD_MAX_TIMEOUT="3",
        HOOKD_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    apis = [HookdProcess("api", tmp_path, f"api{i}", env) for i in range(2)]
    workers = [HookdProcess("worker", tmp_path, f"worker{i}", env) for i in range(3)]
    processes = apis + workers
    async with Receiver() as receiver, aiohttp.ClientSession() as session:
        try:
            for process in processes:
                process.start()
            for process in processes:
                await process.wait_ready(session)
            async with session.post(
                apis[0].url + "/v1/endpoints",
                json={"url": receiver.url, "event_types": ["order.*"]},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ) as response:
                assert response.status == 201, await response.text()
                secret = (await response.json())["secret"]

            # round 1: nobody dies; every event is delivered exactly once
            await publish(session, apis, 0, ROUND_1)
            await wait_until(
                lambda: len(event_numbers(receiver)) == ROUND_1, 180, "round 1 deliveries"
            )
            await asyncio.sleep(1.0)  # anything sent twice would arrive now
            round_1 = list(receiver.requests)
            assert len(round_1) == ROUND_1, f"{len(round_1) - ROUND_1} deliveries sent twice"
            assert len({r.id for r in round_1}) == ROUND_1

            # round 2: slow answers keep requests in flight; one worker dies mid-flight
            receiver.script = lambda _r, _n, _k: Reply(200, delay=0.05)
            publishing = asyncio.create_task(publish(session, apis, ROUND_1, ROUND_2))
            await wait_until(
                lambda: len(receiver.requests) >= ROUND_1 + ROUND_2 // 4, 120, "round 2 start"
            )
            victim = workers[0]
            victim.kill()
            held = await leases_of(postgres_schema, victim.pid)
            assert held, "the killed worker held no lease: nothing was in flight"
            await publishing
            everything = set(range(ROUND_1 + ROUND_2))
            await wait_until(
                lambda: event_numbers(receiver) == everything,
                LEASE_SECONDS + 180,
                "round 2 deliveries",
            )
            await wait_all_delivered(postgres_schema, ROUND_1 + ROUND_2, timeout=60)
            for process in apis + workers[1:]:
                assert process.terminate() == 0, process.log.read_text()
        finally:
            for process in processes:
                process.ensure_stopped()

    ids_by_event: dict[int, set[str]] = defaultdict(set)
    for request in receiver.requests:
        signing.verify(secret, request.headers, request.body)
        ids_by_event[request.json()["data"]["i"]].add(request.id)
    assert sorted(ids_by_event) == list(range(ROUND_1 + ROUND_2))
    # a delivery sent twice carries the same webhook-id each time
    assert all(len(ids) == 1 for ids in ids_by_event.values())
    sent = Counter(r.id for r in receiver.requests)
    twice = {delivery_id for delivery_id, n in sent.items() if n > 1}
    assert twice <= held, f"sent twice without a lease of the killed worker: {twice - held}"
    print(f"killed worker held {len(held)} leases; {len(twice)} deliveries were sent twice")


async def leases_of(schema: postgres.Schema, pid: int) -> set[str]:
    """The deliveries leased to the worker of process `pid` (its id is wrk_<pid>_…)."""
    conn = await asyncpg.connect(schema.url, server_settings={"search_path": schema.name})
    try:
        rows = await conn.fetch(
            "SELECT id FROM deliveries WHERE status = 'sending' AND lease_owner LIKE $1",
            f"wrk\\_{pid}\\_%",
        )
    finally:
        await conn.close()
    return {r["id"] for r in rows}


async def wait_all_delivered(schema: postgres.Schema, count: int, timeout: float) -> None:
    conn = await asyncpg.connect(schema.url, server_settings={"search_path": schema.name})
    try:
        deadline = time.monotonic() + timeout
        while True:
            statuses = dict(
                await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
            )
            if statuses == {"delivered": count}:
                return
            assert time.monotonic() < deadline, f"deliveries by status: {statuses}"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
