"""Upgrading a version-1 SQLite database (made before tenancy and event types) keeps its data."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hookd import crypto
from hookd.domain.models import Event
from hookd.store.port import EventFilter
from hookd.store.sql import load_migrations
from hookd.store.sqlite import SqliteStore
from hookd.store.sqlite.store import _split_script, migrate


def make_version_1(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL) STRICT"
    )
    (first,) = [m for m in load_migrations("hookd.store.sqlite.migrations") if m[0] == 1]
    for statement in _split_script(first[2]):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")
    conn.execute(
        "INSERT INTO events (id, tenant_id, type, payload, occurred_at, created_at, "
        "idempotency_key) VALUES ('evt_old', 'default', 'a.b', X'7B7D', 1, ?, 'k')",
        (time.time(),),
    )
    conn.close()


async def test_a_version_1_database_upgrades_with_its_data(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    make_version_1(db)
    conn = sqlite3.connect(db, isolation_level=None)
    latest = len(load_migrations("hookd.store.sqlite.migrations"))
    assert migrate(conn) == latest
    columns = {row[1] for row in conn.execute("PRAGMA table_info(endpoints)")}
    assert {"filter", "rate_limit"} <= columns
    conn.close()

    store = SqliteStore(db, crypto.SecretBox(crypto.generate_key()))
    await store.open()
    try:
        (event,) = (await store.list_events(None, EventFilter(), limit=10)).items
        assert event.id == "evt_old"
        assert event.idempotency_key == "k"
        # the key it had is still honoured, within its window
        (repeat,) = await store.publish(
            [
                Event(
                    id="evt_new",
                    tenant_id="default",
                    type="a.b",
                    payload=b"{}",
                    occurred_at=1,
                    created_at=time.time(),
                    idempotency_key="k",
                )
            ],
            idempotent_since=time.time() - 60,
        )
        assert repeat.duplicate and repeat.event.id == "evt_old"
        types = await store.list_event_types(None, include_archived=True, limit=5)
        assert types.items == []
    finally:
        await store.close()
