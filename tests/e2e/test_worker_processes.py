"""`--worker-processes N`: `hookd serve` (or `hookd worker`) runs its own worker and N-1 worker
processes beside it (`python -m hookd.delivery.helper`), over the same database.

Real processes, a real receiver: the work is shared and done exactly once; a SIGKILLed owner
loses nothing (its worker processes stop by themselves, the next run delivers the rest); a
SIGKILLed worker process is started again, and what it held is due again at once; SIGTERM /
Ctrl-C stop the whole family cleanly; on PostgreSQL a `hookd worker --worker-processes 2` beside
a `hookd api` delivers everything once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from hookd.policy import signing
from support import postgres
from support.processes import (
    Hookd,
    Samples,
    alive,
    by_label,
    children,
    helpers_of,
    kill_left_over,
    readyz,
    readyz_url,
    scrape,
    statuses,
    total,
    wait_gone,
    wait_pg_delivered,
    wait_until,
)
from support.receiver import Receiver, Reply
from support.server import ADMIN_KEY, ServeProcess, free_port

pytestmark = pytest.mark.slow


# the API ----------------------------------------------------------------------------------------
async def subscribe(session: aiohttp.ClientSession, url: str, receiver: Receiver) -> str:
    async with session.post(
        url + "/v1/endpoints",
        json={"url": receiver.url, "event_types": ["order.*"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["secret"])


async def publish(session: aiohttp.ClientSession, url: str, first: int, count: int) -> None:
    """Events first..first+count-1 through the batch route, 1000 at a time."""
    for start in range(first, first + count, 1000):
        items = [
            {"type": "order.filled", "payload": {"i": i}}
            for i in range(start, min(start + 1000, first + count))
        ]
        async with session.post(
            url + "/v1/events/batch",
            json={"events": items},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as response:
            assert response.status == 202, await response.text()


def leases_of(db: Path, pid: int) -> set[str]:
    """The deliveries leased to the worker of process `pid` (its id is wrk_<pid>_…)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT id FROM deliveries WHERE status = 'sending' AND lease_owner LIKE ? ESCAPE '!'",
            (f"wrk!_{pid}!_%",),
        )
        return {row[0] for row in rows}
    finally:
        conn.close()


def recovered(server: ServeProcess) -> list[int]:
    """What each start of `server` logged of the leases a previous run left (none: not logged)."""
    return [int(n) for n in re.findall(r"recovered (\d+) leases", server.log.read_text())]


def numbers(receiver: Receiver) -> set[int]:
    return {r.json()["data"]["i"] for r in receiver.requests}


def check_ids(receiver: Receiver, secret: str, count: int) -> Counter[str]:
    """Every event 0..count-1 arrived, signed, each under one webhook-id; the sends by id."""
    ids_by_event: dict[int, set[str]] = defaultdict(set)
    for request in receiver.requests:
        signing.verify(secret, request.headers, request.body)
        ids_by_event[request.json()["data"]["i"]].add(request.id)
    assert sorted(ids_by_event) == list(range(count))
    repeated = {i: ids for i, ids in ids_by_event.items() if len(ids) != 1}
    assert not repeated, f"events sent under more than one webhook-id: {repeated}"
    return Counter(r.id for r in receiver.requests)


async def deliver_all_and_stop(server: ServeProcess, receiver: Receiver, events: int) -> None:
    """Every event arrives and is recorded delivered; then a clean stop (exit status 0)."""
    await receiver.wait_for(lambda: len(numbers(receiver)) == events, timeout=30)
    await wait_until(lambda: statuses(server.db) == {"delivered": events}, 10, "all delivered")
    assert server.terminate() == 0, server.log.read_text()


def assert_repeats_only_of(held: set[str], sent: Counter[str]) -> None:
    """Only deliveries in `held` (leased by a killed process) were sent more than once."""
    twice = {delivery_id for delivery_id, n in sent.items() if n > 1}
    assert twice <= held, f"sent twice without a lease of the killed process: {twice - held}"


# 1. the work is shared and done once -------------------------------------------------------------
async def test_three_processes_share_the_work_and_deliver_each_event_once(tmp_path: Path) -> None:
    events = 3000
    # a small delay and a small per-process window: no process can take everything at once,
    # so every process has deliveries to claim while the others' are in flight
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=0.01)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--worker-processes", "3"),
            HOOKD_ENDPOINT_MAX_IN_FLIGHT="8",
            HOOKD_WORKER_BATCH_SIZE="16",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid)
            assert len(helpers) == 2, f"worker processes of {server.pid}: {children(server.pid)}"
            async with aiohttp.ClientSession() as session:
                secret = await subscribe(session, server.url, receiver)
                await publish(session, server.url, 0, events)
                await receiver.wait_for(lambda: len(numbers(receiver)) == events, timeout=30)
                await wait_until(
                    lambda: statuses(server.db) == {"delivered": events}, 10, "all delivered"
                )
                # the worker processes report every second
                samples: Samples = {}

                async def reported() -> bool:
                    nonlocal samples
                    samples = await scrape(session, server)
                    return total(samples, "hookd_delivery_attempts_total") >= events

                deadline = time.monotonic() + 10
                while not await reported():
                    assert time.monotonic() < deadline, "/metrics never counted every attempt"
                    await asyncio.sleep(0.2)
            assert helpers_of(server.pid) == helpers  # none of them was restarted
            assert server.terminate() == 0, server.log.read_text()
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)

    sent = check_ids(receiver, secret, events)
    assert len(sent) == events
    assert len(receiver.requests) == events, f"{len(receiver.requests) - events} sent twice"
    assert total(samples, "hookd_delivery_attempts_total") == events
    assert total(samples, "hookd_delivery_attempts_total", outcome="delivered") == events
    assert total(samples, "hookd_events_published_total") == events
    assert samples[("hookd_worker_processes", frozenset())] == 3
    per_process = by_label(samples, "hookd_worker_process_attempts_total", "process")
    assert set(per_process) == {"0", "1", "2"}
    assert sum(per_process.values()) == events
    print(f"attempts by process: {per_process}")
    busy = [p for p, n in per_process.items() if n > 0]
    assert len(busy) >= 2, f"one process did all the work: {per_process}"
    assert all(not alive(p) for p in helpers)


# 2. a SIGKILLed owner loses nothing ---------------------------------------------------------------
async def test_a_sigkilled_owner_loses_nothing_and_its_worker_processes_stop(
    tmp_path: Path,
) -> None:
    events = 300
    grace = 2.0
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=0.3)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--worker-processes", "2"),
            HOOKD_SHUTDOWN_GRACE=str(grace),
            HOOKD_ENDPOINT_MAX_IN_FLIGHT="16",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid)
            assert len(helpers) == 1
            async with aiohttp.ClientSession() as session:
                secret = await subscribe(session, server.url, receiver)
                await publish(session, server.url, 0, events)
            await receiver.wait_for(lambda: len(receiver.requests) >= 40, timeout=20)
            owner = server.pid
            server.kill()
            held = leases_of(server.db, owner)
            assert held, "the owner held no lease: nothing was in flight"
            assert len(numbers(receiver)) < events, "everything was delivered before the kill"
            # EOF on their stdin: they finish in flight (0.3 s here) and exit, on their own
            took = await wait_gone(helpers, timeout=grace + 8)
            assert took <= grace + 3, f"the worker process took {took:.1f}s to stop"
            assert "stopping" in server.log.read_text()

            receiver.script = lambda _r, _n, _k: Reply(200)
            await server.start()  # the same database: the leases left behind are freed
            helpers |= helpers_of(server.pid)
            assert recovered(server) == [len(held)]
            await deliver_all_and_stop(server, receiver, events)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)

    # only what the owner held a lease on when it died can go twice (in flight, or answered but
    # not yet recorded); its worker process finished and recorded everything it had sent
    assert_repeats_only_of(held, check_ids(receiver, secret, events))


async def test_an_owner_started_at_once_waits_for_the_last_runs_worker_processes(
    tmp_path: Path,
) -> None:
    """Restarted the moment it died, the owner frees only its own leases: the worker process of
    the run before is still finishing its requests, and the new owner waits for it to exit
    (`<db>.workers`) before it frees what is left "sending"."""
    events = 200
    grace = 3.0
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=1.5)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--worker-processes", "2"),
            HOOKD_SHUTDOWN_GRACE=str(grace),
            HOOKD_ENDPOINT_MAX_IN_FLIGHT="16",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            (helper,) = helpers = helpers_of(server.pid)
            async with aiohttp.ClientSession() as session:
                secret = await subscribe(session, server.url, receiver)
                await publish(session, server.url, 0, events)
            owner = server.pid
            await wait_until(
                lambda: leases_of(server.db, owner) and leases_of(server.db, helper),
                20,
                "both processes to hold leases",
            )
            await receiver.wait_for(lambda: receiver.in_flight >= 16, timeout=20)
            server.kill()
            held = leases_of(server.db, owner)
            assert alive(helper)
            receiver.script = lambda _r, _n, _k: Reply(200)
            restarted_at = time.monotonic()
            await server.start()
            assert not alive(helper), "the new owner opened beside the last run's worker process"
            assert time.monotonic() - restarted_at <= grace + 10
            helpers |= helpers_of(server.pid)
            # the owner's leases, and none of its worker process's (released, or recorded)
            assert recovered(server) == [len(held)], server.log.read_text()
            await deliver_all_and_stop(server, receiver, events)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)

    assert_repeats_only_of(held, check_ids(receiver, secret, events))


# 3. a SIGKILLed worker process is started again --------------------------------------------------
async def test_a_killed_worker_process_is_started_again(tmp_path: Path) -> None:
    before, after = 200, 500
    lease = 300.0
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=0.5)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--worker-processes", "3"),
            # a lease far longer than the test: what the killed process held goes again within
            # it only because the owner gives its leases back
            HOOKD_DEFAULT_TIMEOUT="2",
            HOOKD_MAX_TIMEOUT="2",
            HOOKD_LEASE_SECONDS=str(lease),
            HOOKD_ENDPOINT_MAX_IN_FLIGHT="8",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid)
            assert len(helpers) == 2
            victim = min(helpers)
            async with aiohttp.ClientSession() as session:
                secret = await subscribe(session, server.url, receiver)
                await publish(session, server.url, 0, before)
                await wait_until(lambda: leases_of(server.db, victim), 20, "a lease of the victim")
                os.kill(victim, signal.SIGKILL)
                held = leases_of(server.db, victim)
                receiver.script = lambda _r, _n, _k: Reply(200)
                # not ready while it is down (it is started again after a second at least)
                await wait_until(
                    lambda: not alive(victim) and victim not in children(server.pid),
                    5,
                    "the killed worker process to be reaped",
                )
                seen_not_ready = False
                deadline = time.monotonic() + 20
                while True:
                    status = await readyz(session, server)
                    seen_not_ready |= status == 503
                    if status == 200 and len(helpers_of(server.pid)) == 2:
                        break
                    assert time.monotonic() < deadline, "never ready again"
                    await asyncio.sleep(0.05)
                assert seen_not_ready, "/readyz said ready while a worker process was down"
                now = helpers_of(server.pid)
                helpers |= now
                assert victim not in now
                assert len(now) == 2
                log = server.log.read_text()
                assert f"(pid {victim}) exited with status -9" in log, log
                assert re.search(r"worker process \d died holding \d+ deliveries", log), log
                samples = await scrape(session, server)
                assert samples[("hookd_worker_processes", frozenset())] == 3

                await publish(session, server.url, before, after)
                everything = set(range(before + after))
                # the owner gave the victim's leases back: what it held goes again
                await receiver.wait_for(lambda: numbers(receiver) == everything, timeout=30)
                await wait_until(
                    lambda: statuses(server.db) == {"delivered": before + after},
                    10,
                    "all delivered",
                )
            assert server.terminate() == 0, server.log.read_text()
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)
    assert_repeats_only_of(held, check_ids(receiver, secret, before + after))
    assert all(not alive(p) for p in helpers)


# 4. SIGTERM / Ctrl-C stop the whole family ------------------------------------------------------
@pytest.mark.parametrize("how", ["sigterm-owner", "sigint-group", "sigterm-group"])
async def test_a_graceful_stop_stops_every_process_and_loses_nothing(
    tmp_path: Path, how: str
) -> None:
    events = 400
    async with Receiver(lambda _r, _n, _k: Reply(200, delay=0.2)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--worker-processes", "3"),
            new_session=how.endswith("-group"),
            HOOKD_SHUTDOWN_GRACE="5",
            HOOKD_ENDPOINT_MAX_IN_FLIGHT="16",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid)
            assert len(helpers) == 2
            async with aiohttp.ClientSession() as session:
                secret = await subscribe(session, server.url, receiver)
                await publish(session, server.url, 0, events)
            await receiver.wait_for(lambda: len(receiver.requests) >= 40, timeout=20)
            assert server.proc is not None
            if how == "sigterm-owner":
                server.proc.send_signal(signal.SIGTERM)
            elif how == "sigint-group":  # Ctrl-C in a terminal: the foreground group gets it
                os.killpg(server.pid, signal.SIGINT)
            else:  # a service manager stopping the whole group (systemd's default)
                os.killpg(server.pid, signal.SIGTERM)
            code = await asyncio.to_thread(server.proc.wait, 25)
            assert code == 0, server.log.read_text()
            assert not any(alive(p) for p in helpers), "a worker process outlived its owner"
            assert len(numbers(receiver)) < events, "everything was delivered before the stop"
            # the leases were released on the way out: nothing is left "sending"
            assert "sending" not in statuses(server.db), statuses(server.db)

            receiver.script = lambda _r, _n, _k: Reply(200)
            await server.start()
            helpers |= helpers_of(server.pid)
            await deliver_all_and_stop(server, receiver, events)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)
    sent = check_ids(receiver, secret, events)
    # a graceful stop finishes what is in flight: nothing goes twice
    assert len(receiver.requests) == len(sent) == events
    assert all(not alive(p) for p in helpers)


# 5. PostgreSQL: hookd worker --worker-processes 2 beside hookd api ------------------------------
async def test_postgres_worker_with_two_processes_delivers_once(
    tmp_path: Path, postgres_schema: postgres.Schema
) -> None:
    events = 2000
    env = postgres.migrated_env(
        postgres_schema,
        ADMIN_KEY,
        HOOKD_WORKER_POLL_INTERVAL="0.1",
        HOOKD_ENDPOINT_MAX_IN_FLIGHT="8",
        HOOKD_WORKER_BATCH_SIZE="16",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = Hookd(tmp_path, "api", env, "api", "--port", str(port))
    worker = Hookd(tmp_path, "worker", env, "worker", "--worker-processes", "2")
    helpers: set[int] = set()
    async with (
        Receiver(lambda _r, _n, _k: Reply(200, delay=0.01)) as receiver,
        aiohttp.ClientSession() as session,
    ):
        try:
            api.start()
            worker.start()

            async def ready() -> bool:
                assert api.proc is not None and worker.proc is not None
                assert api.proc.poll() is None, api.log.read_text()
                assert worker.proc.poll() is None, worker.log.read_text()
                # printed once the engine is open, its worker processes started
                return "hookd worker" in worker.log.read_text() and (
                    await readyz_url(session, url) == 200
                )

            deadline = time.monotonic() + 30
            while not await ready():
                assert time.monotonic() < deadline, worker.log.read_text()
                await asyncio.sleep(0.1)
            helpers = helpers_of(worker.pid)
            assert len(helpers) == 1, worker.log.read_text()

            secret = await subscribe(session, url, receiver)
            done = asyncio.Event()
            watching = asyncio.create_task(lease_owners(postgres_schema, done))
            await publish(session, url, 0, events)
            await receiver.wait_for(lambda: len(numbers(receiver)) == events, timeout=30)
            await wait_pg_delivered(postgres_schema, events, timeout=10)
            done.set()
            workers = await asyncio.wait_for(watching, 10)
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.proc.wait, 25) == 0, worker.log.read_text()
            assert not any(alive(p) for p in helpers)
        finally:
            worker.ensure_stopped()
            api.ensure_stopped()
            kill_left_over(helpers)
    sent = check_ids(receiver, secret, events)
    assert len(receiver.requests) == len(sent) == events
    assert workers == {worker.pid, *helpers}, f"lease owners {workers}: not both processes"


async def lease_owners(schema: postgres.Schema, done: asyncio.Event) -> set[int]:
    """The processes seen holding leases until `done` (a worker id is wrk_<pid>_…)."""
    conn = await asyncpg.connect(schema.url, server_settings={"search_path": schema.name})
    seen: set[int] = set()
    try:
        while not done.is_set():
            rows = await conn.fetch(
                "SELECT DISTINCT lease_owner FROM deliveries WHERE status = 'sending'"
            )
            seen |= {int(str(r["lease_owner"]).split("_")[1]) for r in rows}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.02)
    finally:
        await conn.close()
    return seen
