"""One SQLite database, written by its owner and its worker and API processes (`shared`): their
endpoint caches follow the database's version of the endpoints, their event-type caches a shared
stamp, and an owner waits for the helper processes of an earlier run before it opens. Two stores
in this process stand for the two."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_store_contract import make_endpoint, make_event, result_for

from hookd import crypto
from hookd.domain import errors, ids
from hookd.domain.models import DeliveryStatus, EndpointStatus, EventType
from hookd.store.sqlite import SqliteStore
from hookd.store.sqlite.store import SharedStamp, types_stamp_path


@dataclasses.dataclass
class Pair:
    db: Path
    box: crypto.SecretBox
    owner: SqliteStore
    helper: SqliteStore


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    db = tmp_path / "shared.db"
    box = crypto.SecretBox(crypto.generate_key())
    owner = SqliteStore(db, box, exclusive=True, shared=True)
    await owner.open()
    helper = SqliteStore(db, box, exclusive=False, shared=True)
    await helper.open()
    try:
        yield Pair(db, box, owner, helper)
    finally:
        await helper.close()
        await owner.close()


async def test_an_owners_pause_and_update_reach_a_helpers_cache(pair: Pair) -> None:
    endpoint = make_endpoint(patterns=("order.*",))
    await pair.owner.create_endpoint(endpoint)
    cached = await pair.helper.endpoints_by_id([endpoint.id])
    assert cached[endpoint.id].status is EndpointStatus.ACTIVE
    assert (await pair.helper.endpoints_by_id([endpoint.id]))[endpoint.id] == endpoint  # cached

    paused = dataclasses.replace(endpoint, status=EndpointStatus.PAUSED, updated_at=time.time())
    await pair.owner.update_endpoint(paused)
    seen = (await pair.helper.endpoints_by_id([endpoint.id]))[endpoint.id]
    assert seen.status is EndpointStatus.PAUSED

    moved = dataclasses.replace(
        paused,
        status=EndpointStatus.ACTIVE,
        url="https://example.com/elsewhere",
        timeout=7.5,
        updated_at=time.time(),
    )
    await pair.owner.update_endpoint(moved)
    assert (await pair.helper.endpoints_by_id([endpoint.id]))[endpoint.id] == moved

    await pair.owner.delete_endpoint(None, endpoint.id)
    assert await pair.helper.endpoints_by_id([endpoint.id]) == {}


async def test_a_helpers_update_reaches_the_owners_cache_and_fan_out(pair: Pair) -> None:
    endpoint = make_endpoint(patterns=("order.*",))
    await pair.owner.create_endpoint(endpoint)
    # the owner caches the endpoint and its fan-out targets
    assert (await pair.owner.endpoints_by_id([endpoint.id]))[endpoint.id] == endpoint
    (first,) = await pair.owner.publish([make_event("order.filled")])
    assert first.deliveries == 1
    (none,) = await pair.owner.publish([make_event("user.created")])
    assert none.deliveries == 0

    widened = dataclasses.replace(
        endpoint, event_types=("user.*",), name="users", updated_at=time.time()
    )
    await pair.helper.update_endpoint(widened)

    assert (await pair.owner.endpoints_by_id([endpoint.id]))[endpoint.id] == widened
    (now_matches,) = await pair.owner.publish([make_event("user.created")])
    assert now_matches.deliveries == 1, "the owner fanned out with stale targets"
    (no_longer,) = await pair.owner.publish([make_event("order.filled")])
    assert no_longer.deliveries == 0, "the owner fanned out with stale targets"


async def test_a_helpers_disable_through_record_reaches_the_owner(pair: Pair) -> None:
    endpoint = make_endpoint(patterns=("order.*",))
    await pair.owner.create_endpoint(endpoint)
    assert (await pair.owner.endpoints_by_id([endpoint.id]))[endpoint.id].status is (
        EndpointStatus.ACTIVE
    )
    await pair.owner.publish([make_event("order.filled")])  # the owner's targets are cached

    now = time.time()
    claimed = await pair.helper.claim(worker_id="helper", limit=10, now=now + 1, lease_seconds=30)
    assert len(claimed) == 1
    gone = result_for(
        claimed[0].id, endpoint.id, DeliveryStatus.PARKED, disable="the receiver answered 410"
    )
    await pair.helper.record(worker_id="helper", results=[gone], now=now + 1)

    seen = (await pair.owner.endpoints_by_id([endpoint.id]))[endpoint.id]
    assert seen.status is EndpointStatus.DISABLED
    # a disabled endpoint still gets its deliveries (parked); what matters is that the owner's
    # fan-out targets know it is not active: its deliveries are not due
    (later,) = await pair.owner.publish([make_event("order.filled")])
    assert later.deliveries == 1
    due = await pair.owner.claim(worker_id="owner", limit=10, now=time.time() + 1, lease_seconds=30)
    assert due == [], "a delivery to the disabled endpoint was made due"


async def test_an_owner_waits_for_an_earlier_runs_helpers(tmp_path: Path) -> None:
    db = tmp_path / "wait.db"
    box = crypto.SecretBox(crypto.generate_key())
    first = SqliteStore(db, box, exclusive=True, shared=True)
    await first.open()
    helper = SqliteStore(db, box, exclusive=False, shared=True)
    await helper.open()
    await first.close()  # the owner is gone; its worker process is still there

    started = time.monotonic()
    blocked = SqliteStore(db, box, exclusive=True, shared=True, helpers_wait=0.3)
    with pytest.raises(errors.ConfigError, match="worker processes"):
        await blocked.open()
    assert 0.25 <= time.monotonic() - started < 5
    # the failed open let go of the database: another owner can try again
    waiting = SqliteStore(db, box, exclusive=True, shared=True, helpers_wait=10)
    opening = asyncio.create_task(waiting.open())
    await asyncio.sleep(0.3)
    assert not opening.done(), "the owner opened while a worker process had the database"
    await helper.close()
    await asyncio.wait_for(opening, 5)
    await waiting.close()

    again = SqliteStore(db, box, exclusive=True, shared=True, helpers_wait=0.3)
    await again.open()
    await again.close()


async def test_a_non_shared_owner_keeps_its_endpoint_cache(tmp_path: Path) -> None:
    """Without worker processes nothing else writes the database: no version is read."""
    db = tmp_path / "alone.db"
    box = crypto.SecretBox(crypto.generate_key())
    owner = SqliteStore(db, box)  # exclusive, not shared: the default
    await owner.open()
    other = SqliteStore(db, box, exclusive=False, shared=True)
    await other.open()
    try:
        endpoint = make_endpoint()
        await owner.create_endpoint(endpoint)
        assert (await owner.endpoints_by_id([endpoint.id]))[endpoint.id] == endpoint
        paused = dataclasses.replace(endpoint, status=EndpointStatus.PAUSED)
        await other.update_endpoint(paused)
        assert (await owner.endpoints_by_id([endpoint.id]))[endpoint.id] == endpoint
        assert (await other.endpoints_by_id([endpoint.id]))[endpoint.id] == paused
    finally:
        await other.close()
        await owner.close()


def make_type(name: str, *, schema: dict[str, object] | None = None) -> EventType:
    now = time.time()
    return EventType(
        id=ids.new_id(ids.EVENT_TYPE),
        tenant_id="default",
        name=name,
        created_at=now,
        updated_at=now,
        schema=schema,
    )


async def test_an_event_type_declared_in_one_process_reaches_the_others_cache(pair: Pair) -> None:
    """API processes publish beside each other: each caches event types (a "not declared" too),
    and a declaration or change in any of them reaches the others' next publish (the stamp)."""
    assert await pair.owner.event_types_by_name("default", ["order.filled"]) == {}  # cached
    assert await pair.helper.event_types_by_name("default", ["order.filled"]) == {}
    declared = make_type("order.filled", schema={"type": "object", "required": ["id"]})
    await pair.helper.create_event_type(declared)
    assert await pair.owner.event_types_by_name("default", ["order.filled"]) == {
        "order.filled": declared
    }
    archived = dataclasses.replace(declared, archived=True, updated_at=declared.updated_at + 1)
    await pair.owner.update_event_type(archived)
    assert (await pair.helper.event_types_by_name("default", ["order.filled"]))[
        "order.filled"
    ].archived


async def test_a_stamp_touched_from_outside_empties_the_event_type_cache(pair: Pair) -> None:
    """What an owner does when an API process dies (it may have committed a change and died
    before touching the stamp itself)."""
    assert await pair.owner.event_types_by_name("default", ["a.b"]) == {}
    declared = make_type("a.b")
    with contextlib.closing(sqlite3.connect(pair.db, isolation_level=None)) as conn:  # unheard
        conn.execute(
            "INSERT INTO event_types (id, tenant_id, name, description, schema, example, "
            "archived, created_at, updated_at) VALUES (?, 'default', 'a.b', NULL, NULL, NULL, "
            "0, ?, ?)",
            (declared.id, declared.created_at, declared.updated_at),
        )
    assert await pair.owner.event_types_by_name("default", ["a.b"]) == {}  # still cached
    stamp = SharedStamp(types_stamp_path(pair.db))
    stamp.touch()
    stamp.close()
    assert set(await pair.owner.event_types_by_name("default", ["a.b"])) == {"a.b"}
