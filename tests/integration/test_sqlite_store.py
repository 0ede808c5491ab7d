"""What only the SQLite adapter promises: migrations, encryption at rest, durability, one owner."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
from test_store_contract import make_endpoint, make_event

from hookd import crypto
from hookd.domain import errors
from hookd.store import codec
from hookd.store.sql import load_migrations
from hookd.store.sqlite import SqliteStore
from hookd.store.sqlite.store import migrate

EXPECTED_SCHEMA = Path(__file__).with_name("expected_schema_sqlite.sql")
LATEST = len(load_migrations("hookd.store.sqlite.migrations"))


def dump_schema(path: Path) -> str:
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "ORDER BY type, name"
    ).fetchall()
    conn.close()
    return "\n".join(f"-- {kind} {name}\n{sql};" for kind, name, sql in rows) + "\n"


def test_fresh_migrate_produces_the_expected_schema(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn) == LATEST
    assert migrate(conn) == LATEST  # idempotent
    conn.close()
    schema = dump_schema(db)
    # A schema change needs a new migration and a reviewed snapshot: regenerate it with
    # HOOKD_WRITE_SCHEMA_SNAPSHOT=1 and read the diff.
    if os.environ.get("HOOKD_WRITE_SCHEMA_SNAPSHOT") == "1":
        EXPECTED_SCHEMA.write_text(schema)
    assert schema == EXPECTED_SCHEMA.read_text()


async def test_secrets_and_headers_are_encrypted_at_rest(tmp_path: Path) -> None:
    db = tmp_path / "enc.db"
    box = crypto.SecretBox(crypto.generate_key())
    store = SqliteStore(db, box)
    await store.open()
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.close()
    raw = db.read_bytes() + (
        db.with_name("enc.db-wal").read_bytes() if db.with_name("enc.db-wal").exists() else b""
    )
    assert endpoint.secrets[0].value.reveal().encode() not in raw
    assert b"Bearer token" not in raw
    # a different key cannot open the database
    with pytest.raises(errors.ConfigError, match="HOOKD_SECRET_KEY"):
        await SqliteStore(db, crypto.SecretBox(crypto.generate_key())).open()
    reopened = SqliteStore(db, box)
    await reopened.open()
    assert await reopened.get_endpoint(None, endpoint.id) == endpoint
    await reopened.close()


async def test_accepted_events_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    box = crypto.SecretBox(crypto.generate_key())
    store = SqliteStore(db, box)
    await store.open()
    await store.create_endpoint(make_endpoint())
    results = await store.publish([make_event() for _ in range(50)])
    await store.close()
    again = SqliteStore(db, box)
    await again.open()
    claimed = await again.claim(worker_id="w", limit=100, now=time.time() + 1, lease_seconds=30)
    assert {c.event_id for c in claimed} == {r.event.id for r in results}
    await again.close()


async def test_one_process_owns_a_database(tmp_path: Path) -> None:
    db = tmp_path / "owned.db"
    box = crypto.SecretBox(crypto.generate_key())
    first = SqliteStore(db, box)
    await first.open()
    with pytest.raises(errors.ConfigError, match="in use by another hookd process"):
        await SqliteStore(db, box).open()
    await first.close()
    second = SqliteStore(db, box)
    await second.open()
    await second.close()


async def test_a_failing_write_does_not_undo_the_others_in_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "batch.db", crypto.SecretBox(crypto.generate_key()))
    await store.open()
    endpoint = make_endpoint()
    results = await asyncio.gather(
        store.create_endpoint(endpoint),
        store.create_endpoint(endpoint),  # duplicate id: fails alone
        store.create_endpoint(make_endpoint()),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], errors.StoreError)
    assert len((await store.list_endpoints(None, limit=10)).items) == 2
    await store.close()


async def test_a_failing_write_alone_in_its_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "alone.db", crypto.SecretBox(crypto.generate_key()))
    await store.open()
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'done')")
        conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'again')")  # a duplicate key

    with pytest.raises(errors.StoreError):
        await store._write(half_then_fail)  # the only job of its transaction
    await store.create_endpoint(make_endpoint())  # the writer goes on
    assert len((await store.list_endpoints(None, limit=10)).items) == 2
    found = await store._read(
        lambda c: c.execute("SELECT count(*) FROM meta WHERE key = 'half'").fetchone()
    )
    assert found[0] == 0
    await store.close()


def test_the_claim_walks_the_due_index(tmp_path: Path) -> None:
    """The claim's plan must use the partial index, not a scan and a sort (cost flat in backlog)."""
    from hookd.store.sqlite.store import Q

    db = tmp_path / "plan.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    plans = {}
    for name in ("claim_due", "next_due_at", "queue_counts", "release_worker_leases"):
        params = {"worker_id": "w", "lease_until": 1.0, "now": 0.0, "limit": 10}
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q[name], params))
        assert "deliveries_due" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        plans[name] = plan
    conn.close()
    # one range per priority level, bounded by now: retries not yet due (at any priority) are
    # outside every range, never read
    assert "USING INDEX deliveries_due (priority=? AND next_attempt_at<?)" in plans["claim_due"]


def test_priority_levels_in_the_queries_match_the_bounds() -> None:
    """The claim lists every priority level; they must follow MIN_PRIORITY..MAX_PRIORITY."""
    from hookd.domain.models import MAX_PRIORITY, MIN_PRIORITY
    from hookd.store.postgres.store import Q as PG
    from hookd.store.sqlite.store import Q as SQ

    levels = list(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))
    sqlite_list = "(" + ", ".join(map(str, levels)) + ")"
    pg_array = "'{" + ",".join(map(str, levels)) + "}'"
    for name in ("claim_due", "next_due_at", "queue_counts", "release_worker_leases"):
        assert sqlite_list in SQ[name], name
        assert pg_array in PG[name].sql, name


async def test_only_durable_writes_wait_for_the_disk(tmp_path: Path) -> None:
    """Publishing syncs (synchronous FULL); the worker's bookkeeping alone does not (NORMAL)."""
    store = SqliteStore(tmp_path / "s.db", crypto.SecretBox(crypto.generate_key()))
    await store.open()

    def level(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    try:
        assert await store._write(level) == 2  # FULL
        assert await store._write(level, durable=False) == 1  # NORMAL
        assert await store._write(level) == 2
        # one batch with both kinds: the durable one decides
        both = await asyncio.gather(
            store._write(level, durable=False), store._write(level), store._write(level)
        )
        assert both[1] == both[2] == 2 and both[0] in (1, 2)
    finally:
        await store.close()


def test_a_batch_of_results_finds_each_delivery_by_id(tmp_path: Path) -> None:
    """complete_deliveries must drive from the batch's rows and look each delivery up by id; a
    plan through deliveries_by_status would scan every delivery in flight once per row."""
    from hookd.store.sqlite.store import Q

    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(conn)
    params = {"rows": "[]", "now": 0.0, "worker_id": "w"}
    plan = [
        row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q["complete_deliveries"], params)
    ]
    conn.close()
    steps = " | ".join(plan)
    assert plan[0].startswith("SCAN json_each"), steps
    assert "SEARCH deliveries USING INDEX sqlite_autoindex_deliveries_1 (id=?)" in steps, steps
    assert "deliveries_by_status" not in steps, steps


@pytest.mark.parametrize(
    ("query", "uses"),
    [
        ("park_endpoint_deliveries", "deliveries_by_endpoint (endpoint_id=? AND <expr>=?)"),
        ("breaker_closed", "deliveries_by_endpoint (endpoint_id=? AND <expr>=?)"),
        ("resume_endpoint_deliveries", "deliveries_by_endpoint (endpoint_id=? AND <expr>=?)"),
        ("release_queued", "deliveries_by_endpoint (endpoint_id=? AND <expr>=?)"),
        ("promote_fifo_heads", "deliveries_by_endpoint (endpoint_id=? AND <expr>=?)"),
        ("recover_all_leases", "deliveries_due (priority=?)"),
        ("release_worker_leases", "deliveries_due (priority=? AND next_attempt_at>?)"),
        ("queue_counts", "COVERING INDEX deliveries_by_status (status=?)"),
    ],
)
def test_endpoint_and_lease_queries_keep_their_indexes(
    tmp_path: Path, query: str, uses: str
) -> None:
    """Migration 10 files sending under pending in deliveries_by_endpoint (an expression) and
    leaves both out of deliveries_by_status (a partial index); migration 11 leaves delivered
    deliveries out of deliveries_by_endpoint. The planner uses such an index only for a query
    that repeats the expression or the partial WHERE word for word: these plans guard that the
    queries still do (else each would scan every delivery of an endpoint, or every delivery)."""
    from hookd.store.sqlite.store import Q

    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(conn)
    sql = Q[query]
    params = dict.fromkeys(re.findall(r":(\w+)", sql))
    steps = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    conn.close()
    assert uses in steps, steps
    assert not re.search(r"SCAN (deliveries|o|q)\b(?! USING)", steps), steps


async def test_a_result_with_a_lone_surrogate_is_recorded(tmp_path: Path) -> None:
    """Text neither SQLite nor JSON can hold (a lone surrogate) is stored as U+FFFD; the whole
    batch lands."""

    from test_store_contract import result_for

    from hookd.domain.models import DeliveryStatus

    store = SqliteStore(tmp_path / "s.db", crypto.SecretBox(crypto.generate_key()))
    await store.open()
    try:
        endpoint = make_endpoint()
        await store.create_endpoint(endpoint)
        await store.publish([make_event(), make_event()])
        now = time.time()
        claimed = await store.claim(worker_id="w", limit=5, now=now, lease_seconds=60)
        results = [
            result_for(c.id, endpoint.id, DeliveryStatus.PENDING, next_at=now + 60) for c in claimed
        ]
        odd = results[0].attempt._replace(error="timeout: \ud800")
        results[0] = results[0]._replace(attempt=odd)
        await store.record(worker_id="w", results=results, now=now)
        for c in claimed:
            found = await store.get_delivery(None, c.id)
            assert found is not None and found.status is DeliveryStatus.PENDING
            assert found.attempts == 1 and found.next_attempt_at == pytest.approx(now + 60)
        odd_delivery = await store.get_delivery(None, claimed[0].id)
        assert odd_delivery is not None and odd_delivery.last_error == "timeout: \ufffd"
    finally:
        await store.close()


async def test_a_claim_still_gets_the_body_of_a_payload_holding_the_separator(
    tmp_path: Path,
) -> None:
    """The claim fetches payloads joined by the byte 0x1F, which JSON text hookd writes never
    holds; a payload that does (written by something else) still comes back whole, for every
    delivery of the claim."""
    store = SqliteStore(tmp_path / "sep.db", crypto.SecretBox(crypto.generate_key()))
    await store.open()
    try:
        await store.create_endpoint(make_endpoint())
        events = [make_event() for _ in range(3)]
        await store.publish(events)
        odd = b'{"n":"a\x1fb"}'
        conn = sqlite3.connect(tmp_path / "sep.db")
        with conn:
            conn.execute("UPDATE events SET payload = ? WHERE id = ?", (odd, events[1].id))
        conn.close()
        claimed = await store.claim(worker_id="w", limit=10, now=time.time() + 1, lease_seconds=30)
        bodies = {c.event_id: c.body for c in claimed}
        assert len(bodies) == 3
        for event in events:
            payload = odd if event.id == events[1].id else event.payload
            assert bodies[event.id] == codec.wire_body(event.type, event.occurred_at, payload)
    finally:
        await store.close()
