"""`--api-processes N`: `hookd serve` (or `hookd api`) serves the API itself and starts N-1 API
processes beside it (`python -m hookd.api.helper`) on the same port, over the same database.

Real processes, real HTTP on 127.0.0.1: both processes answer; `/metrics` wherever it lands
shows the whole service, never going down; an idempotency key holds across processes; a
SIGKILLed API process is started again while nothing it or the others accepted is lost; SIGTERM
stops the family cleanly; on PostgreSQL `hookd api --api-processes 2` beside `hookd worker`.

Which process answers a request is the kernel's choice (a hash of the connection's addresses,
SO_REUSEPORT): the tests open many connections (a new one per request where it matters) and
show through `hookd_api_process_events_published_total{process}` that both processes served.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from support import postgres
from support.processes import (
    API_MODULE,
    WORKER_MODULE,
    Hookd,
    Samples,
    alive,
    by_label,
    helpers_of,
    kill_left_over,
    readyz_url,
    statuses,
    total,
    wait_gone,
    wait_pg_delivered,
    wait_until,
)
from support.receiver import Receiver, Reply
from support.server import ADMIN_KEY, ServeProcess, free_port

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
PUBLISHED = "hookd_events_published_total"
BY_PROCESS = "hookd_api_process_events_published_total"


def fresh_connections() -> aiohttp.ClientSession:
    """A session that opens a new connection for every request (each lands where the kernel's
    hash of its addresses says)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def subscribe(session: aiohttp.ClientSession, url: str, receiver: Receiver) -> str:
    async with session.post(
        url + "/v1/endpoints",
        json={"url": receiver.url, "event_types": ["order.*"]},
        headers=AUTH,
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def publish_one(
    session: aiohttp.ClientSession, url: str, i: int, key: str | None = None
) -> tuple[int, dict[str, object]]:
    headers = AUTH if key is None else {**AUTH, "Idempotency-Key": key}
    async with session.post(
        url + "/v1/events",
        json={"type": "order.filled", "payload": {"i": i}},
        headers=headers,
    ) as response:
        return response.status, await response.json(content_type=None)


async def scrape_url(session: aiohttp.ClientSession, url: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(url + "/metrics", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class Load:
    """Single-event publishes from `tasks` concurrent clients, each over a connection pool of
    its own, until stopped. `accepted`: payload number → event id, for every 202."""

    url: str
    tasks: int = 16
    accepted: dict[int, str] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)  # statuses other than 202
    failed: int = 0  # requests without an answer (connection reset or refused)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _running: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._running = [asyncio.create_task(self._client()) for _ in range(self.tasks)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._running)

    async def _client(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stop.is_set():
                i = next(self._numbers)
                try:
                    status, body = await publish_one(session, self.url, i)
                except (aiohttp.ClientError, TimeoutError):
                    self.failed += 1
                    await asyncio.sleep(0.02)
                    continue
                if status == 202:
                    self.accepted[i] = str(body["id"])
                else:
                    self.refused.append(status)

    async def until(self, count: int, timeout: float = 30) -> None:
        await wait_until(lambda: len(self.accepted) >= count, timeout, f"{count} accepted")


def stored_events(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()


def numbers(receiver: Receiver) -> set[int]:
    return {r.json()["data"]["i"] for r in receiver.requests}


async def all_delivered(server: ServeProcess, receiver: Receiver, accepted: dict[int, str]) -> None:
    """Every accepted event is stored, and every stored event delivered (events whose answer
    was lost with a killed process may be stored too: they are delivered as well)."""
    stored = stored_events(server.db)
    missing = set(accepted.values()) - stored
    assert not missing, f"{len(missing)} accepted events are not in the database"
    await receiver.wait_for(lambda: numbers(receiver) >= set(accepted), timeout=30)
    await wait_until(
        lambda: statuses(server.db) == {"delivered": len(stored)}, 20, "every event delivered"
    )


async def stop_cleanly(server: ServeProcess, helpers: set[int]) -> None:
    assert server.terminate(30) == 0, server.log.read_text()
    await wait_gone(helpers, timeout=5)


# 1. both processes serve; /metrics is the whole service, from either ----------------------------
async def test_two_api_processes_both_serve_and_metrics_never_go_down(tmp_path: Path) -> None:
    async with Receiver(lambda _r, _n, _k: Reply(200)) as receiver:
        server = ServeProcess(tmp_path, args=("--api-processes", "2"))
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid, API_MODULE)
            assert len(helpers) == 1, server.log.read_text()
            assert not helpers_of(server.pid, WORKER_MODULE)
            async with aiohttp.ClientSession() as session:
                await subscribe(session, server.url, receiver)
            load = Load(server.url)
            seen: list[float] = []
            async with fresh_connections() as scraper:
                load.start()
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:  # scrapes land on either process
                    seen.append(total(await scrape_url(scraper, server.url), PUBLISHED))
                    await asyncio.sleep(0.02)
                await load.stop()
                assert not load.refused and not load.failed, (load.refused, load.failed)
                accepted = len(load.accepted)
                # a scrape asks every process for its counts first: all of them, at once
                finals = [await scrape_url(scraper, server.url) for _ in range(12)]
            seen += [total(s, PUBLISHED) for s in finals]
            assert seen == sorted(seen), f"a counter went down: {seen}"
            assert len(set(seen)) > 3, seen
            for samples in finals:
                assert total(samples, PUBLISHED) == accepted
                assert samples[("hookd_api_processes", frozenset())] == 2
                per_process = by_label(samples, BY_PROCESS, "process")
                assert set(per_process) == {"0", "1"}
                assert sum(per_process.values()) == accepted
            print(f"{accepted} events; by process: {per_process}")
            assert min(per_process.values()) > 0, f"one process served everything: {per_process}"
            await all_delivered(server, receiver, load.accepted)
            assert helpers_of(server.pid, API_MODULE) == helpers  # never restarted
            await stop_cleanly(server, helpers)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)


# 2. an idempotency key holds across processes ---------------------------------------------------
async def test_an_idempotency_key_holds_across_api_processes(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, args=("--api-processes", "2"))
    helpers: set[int] = set()
    try:
        await server.start()
        helpers = helpers_of(server.pid, API_MODULE)
        assert len(helpers) == 1
        async with fresh_connections() as session:
            # control: requests on new connections do reach both processes
            for i in range(24):
                assert (await publish_one(session, server.url, i))[0] == 202
            per_process = by_label(await scrape_url(session, server.url), BY_PROCESS, "process")
            assert min(per_process.values()) > 0, per_process

            # concurrent repeats, each on its own connection: one event
            answers = await asyncio.gather(
                *(publish_one(session, server.url, 100 + i, key="order-42") for i in range(24))
            )
            codes = sorted(status for status, _ in answers)
            assert codes == [200] * 23 + [202], codes
            first = {str(body["id"]) for _, body in answers}
            assert len(first) == 1, first
            assert all(body["duplicate"] for status, body in answers if status == 200)
            # later repeats, wherever they land: the first event
            for i in range(12):
                status, body = await publish_one(session, server.url, 200 + i, key="order-42")
                assert (status, body["id"], body["duplicate"]) == (200, *first, True)
            published = total(await scrape_url(session, server.url), PUBLISHED)
            assert published == 24 + 1  # repeats are not counted
        conn = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT id FROM events WHERE idempotency_key = 'order-42'"
            ).fetchall()
        finally:
            conn.close()
        assert [r[0] for r in rows] == list(first)
        await stop_cleanly(server, helpers)
    finally:
        server.ensure_stopped()
        kill_left_over(helpers)


# 3. a SIGKILLed API process: restarted, nothing accepted lost ------------------------------------
async def test_a_sigkilled_api_process_is_restarted_and_nothing_accepted_is_lost(
    tmp_path: Path,
) -> None:
    async with Receiver(lambda _r, _n, _k: Reply(200)) as receiver:
        server = ServeProcess(tmp_path, args=("--api-processes", "2"))
        helpers: set[int] = set()
        try:
            await server.start()
            (victim,) = helpers = helpers_of(server.pid, API_MODULE)
            async with aiohttp.ClientSession() as session:
                await subscribe(session, server.url, receiver)
            load = Load(server.url)
            load.start()
            async with fresh_connections() as probe:
                await load.until(500)
                before = len(load.accepted)
                os.kill(victim, signal.SIGKILL)
                await wait_until(lambda: not alive(victim), 5, "the victim to die")
                # not ready until it is back (it is started again after a second at least)
                seen_not_ready = False
                deadline = time.monotonic() + 20
                while True:
                    status = await readyz_url(probe, server.url)
                    seen_not_ready |= status == 503
                    now = helpers_of(server.pid, API_MODULE)
                    if status == 200 and len(now) == 1 and victim not in now:
                        break
                    assert time.monotonic() < deadline, "never ready again"
                    await asyncio.sleep(0.05)
                assert seen_not_ready, "/readyz said ready while an API process was down"
                helpers |= now
                assert len(load.accepted) > before, "nothing was accepted while it was down"
                # the new one serves new connections (the clients' open ones stay where they
                # are): its count grows
                served = by_label(await scrape_url(probe, server.url), BY_PROCESS, "process")
                for i in range(40):
                    assert (await publish_one(probe, server.url, -1 - i))[0] == 202
                later = by_label(await scrape_url(probe, server.url), BY_PROCESS, "process")
                assert later["1"] > served["1"], (served, later)
            await load.stop()
            log = server.log.read_text()
            assert f"API process 1 (pid {victim}) exited with status -9" in log, log
            assert set(load.refused) <= {503}, load.refused
            print(f"accepted {len(load.accepted)}, no answer {load.failed}")
            await all_delivered(server, receiver, load.accepted)
            await stop_cleanly(server, helpers)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)


# 4. SIGTERM stops the family: exit 0, nothing accepted lost --------------------------------------
@pytest.mark.parametrize("how", ["sigterm-owner", "sigterm-group"])
async def test_a_graceful_stop_under_load_exits_0_and_loses_nothing(
    tmp_path: Path, how: str
) -> None:
    async with Receiver(lambda _r, _n, _k: Reply(200)) as receiver:
        server = ServeProcess(
            tmp_path,
            args=("--api-processes", "2", "--worker-processes", "2"),
            new_session=how == "sigterm-group",
            HOOKD_SHUTDOWN_GRACE="3",
        )
        helpers: set[int] = set()
        try:
            await server.start()
            helpers = helpers_of(server.pid, API_MODULE) | helpers_of(server.pid, WORKER_MODULE)
            assert len(helpers) == 2
            async with aiohttp.ClientSession() as session:
                await subscribe(session, server.url, receiver)
            load = Load(server.url)
            load.start()
            await load.until(800)
            assert server.proc is not None
            if how == "sigterm-owner":
                server.proc.send_signal(signal.SIGTERM)
            else:  # a service manager stopping the whole group
                os.killpg(server.pid, signal.SIGTERM)
            code = await asyncio.to_thread(server.proc.wait, 30)
            await load.stop()
            assert code == 0, server.log.read_text()
            assert not any(alive(p) for p in helpers), "a helper outlived its owner"
            assert set(load.refused) <= {503}, load.refused
            assert "sending" not in statuses(server.db), statuses(server.db)
            missing = set(load.accepted.values()) - stored_events(server.db)
            assert not missing, f"{len(missing)} accepted events lost"

            await server.start()  # what was not delivered yet goes now
            helpers |= helpers_of(server.pid, API_MODULE) | helpers_of(server.pid, WORKER_MODULE)
            await all_delivered(server, receiver, load.accepted)
            await stop_cleanly(server, helpers)
        finally:
            server.ensure_stopped()
            kill_left_over(helpers)


# 5. PostgreSQL: hookd api --api-processes 2 beside hookd worker ----------------------------------
async def test_postgres_api_with_two_processes(
    tmp_path: Path, postgres_schema: postgres.Schema
) -> None:
    events = 300
    env = postgres.migrated_env(postgres_schema, ADMIN_KEY, HOOKD_WORKER_POLL_INTERVAL="0.1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = Hookd(tmp_path, "api", env, "api", "--port", str(port), "--api-processes", "2")
    worker = Hookd(tmp_path, "worker", env, "worker")
    helpers: set[int] = set()
    async with (
        Receiver(lambda _r, _n, _k: Reply(200)) as receiver,
        fresh_connections() as session,
    ):
        try:
            api.start()
            worker.start()
            deadline = time.monotonic() + 30
            while await readyz_url(session, url) != 200 or "hookd worker" not in (
                worker.log.read_text()
            ):
                assert api.proc is not None and api.proc.poll() is None, api.log.read_text()
                assert time.monotonic() < deadline, api.log.read_text()
                await asyncio.sleep(0.1)
            helpers = helpers_of(api.pid, API_MODULE)
            assert len(helpers) == 1, api.log.read_text()

            await subscribe(session, url, receiver)
            answers = await asyncio.gather(*(publish_one(session, url, i) for i in range(events)))
            assert {status for status, _ in answers} == {202}
            repeats = await asyncio.gather(
                *(publish_one(session, url, events + i, key="pg-key") for i in range(12))
            )
            assert sorted(s for s, _ in repeats) == [200] * 11 + [202]
            assert len({str(body["id"]) for _, body in repeats}) == 1
            samples = await scrape_url(session, url)
            assert total(samples, PUBLISHED) == events + 1
            per_process = by_label(samples, BY_PROCESS, "process")
            assert min(per_process.values()) > 0, per_process
            await receiver.wait_for(lambda: len(numbers(receiver)) == events + 1, timeout=30)
            await wait_pg_delivered(postgres_schema, events + 1, timeout=10)
            conn = await asyncpg.connect(
                postgres_schema.url, server_settings={"search_path": postgres_schema.name}
            )
            try:
                keyed = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE idempotency_key = 'pg-key'"
                )
            finally:
                await conn.close()
            assert keyed == 1
            assert api.proc is not None
            api.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(api.proc.wait, 30) == 0, api.log.read_text()
            await wait_gone(helpers, timeout=5)
        finally:
            with contextlib.suppress(Exception):
                if worker.proc is not None and worker.proc.poll() is None:
                    worker.proc.send_signal(signal.SIGTERM)
                    worker.proc.wait(20)
            worker.ensure_stopped()
            api.ensure_stopped()
            kill_left_over(helpers)
