"""WAL checkpoints run on the owner's own thread; a writer's commit checkpoints only what is left
when the WAL passes WAL_RESTART_PAGES, so that it starts over (checkpoint.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from pathlib import Path

from test_store_contract import make_endpoint, make_event

from hookd import crypto
from hookd.store.sqlite import SqliteStore
from hookd.store.sqlite.checkpoint import Checkpointer
from hookd.store.sqlite.store import WAL_RESTART_PAGES

PAGE = 4096


def events_in_the_database_file(db: Path) -> int:
    """Events in the main database file alone, as if the WAL were not there (`immutable`)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?immutable=1", uri=True)) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() is None:
            return 0  # not even the schema has been copied yet
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def autocheckpoint(store: SqliteStore) -> int:
    """The writer connection's `wal_autocheckpoint`: the WAL pages past which its commit
    checkpoints."""
    return int(await store._write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]))


async def test_the_owner_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.db"
    store = SqliteStore(db, crypto.SecretBox(crypto.generate_key()))
    await store.open()
    try:
        await store.create_endpoint(make_endpoint())
        await store.publish([make_event() for _ in range(50)])
        # far below SQLite's own 1,000-page autocheckpoint: only the checkpointer gets them there
        deadline = time.monotonic() + 10.0
        found = -1
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.DatabaseError):  # a page caught mid-copy
                found = events_in_the_database_file(db)
                if found == 50:
                    break
            await asyncio.sleep(0.1)
        assert found == 50
    finally:
        await store.close()


async def test_writers_leave_checkpoints_to_the_owner_until_the_wal_is_long(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ckpt.db"
    box = crypto.SecretBox(crypto.generate_key())
    owner = SqliteStore(db, box, shared=True)
    await owner.open()
    helper = SqliteStore(db, box, exclusive=False, shared=True)
    await helper.open()
    try:
        assert await autocheckpoint(owner) == WAL_RESTART_PAGES
        assert await autocheckpoint(helper) == WAL_RESTART_PAGES
        assert WAL_RESTART_PAGES > 1500
        # with the owner's checkpointer stopped, the WAL grows past the 1,000 pages at which
        # SQLite's default would have checkpointed in a writer's commit
        assert owner._checkpointer is not None
        owner._checkpointer.stop()
        await owner.create_endpoint(make_endpoint())
        big = b'{"blob":"' + b"x" * 3000 + b'"}'
        for _ in range(15):
            await helper.publish(
                [dataclasses.replace(make_event(), payload=big) for _ in range(100)]
            )
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 1500 * PAGE
        assert events_in_the_database_file(db) == 0
    finally:
        await helper.close()
        await owner.close()
    # closing copied everything into the database file
    assert events_in_the_database_file(db) == 1500


async def test_the_wal_stays_short_under_a_steady_load(tmp_path: Path) -> None:
    """The checkpointer alone never finds the WAL fully copied while commits keep coming, so
    the WAL would never start over; the writers' checkpoint past WAL_RESTART_PAGES makes it."""
    db = tmp_path / "ckpt.db"
    store = SqliteStore(db, crypto.SecretBox(crypto.generate_key()))
    await store.open()
    wal = db.with_name(db.name + "-wal")
    largest = 0
    try:
        await store.create_endpoint(make_endpoint())
        big = b'{"blob":"' + b"x" * 12_000 + b'"}'  # 3 pages and more an event
        for _ in range(100):  # 4,000 events: 12,000 pages and more, in commits of 40 or so
            await asyncio.gather(
                *(
                    store.publish([dataclasses.replace(make_event(), payload=big)])
                    for _ in range(40)
                )
            )
            largest = max(largest, wal.stat().st_size)
    finally:
        await store.close()
    assert events_in_the_database_file(db) == 4000
    assert largest < 2 * WAL_RESTART_PAGES * PAGE


async def test_a_store_without_an_owner_checkpoints_as_sqlite_does(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.db"
    store = SqliteStore(db, crypto.SecretBox(crypto.generate_key()), exclusive=False)
    await store.open()
    try:
        assert await autocheckpoint(store) == 1000
        assert store._checkpointer is None
    finally:
        await store.close()


def test_the_checkpointer_comes_back_soon_while_the_wal_changes(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.db"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as writer:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("CREATE TABLE t (x TEXT)")
        checkpointer = Checkpointer(lambda: sqlite3.connect(db, isolation_level=None))
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            assert checkpointer.checkpoint(conn)  # the WAL holds the table: copied
            assert not checkpointer.checkpoint(conn)  # nothing new: the next can wait
            writer.execute("INSERT INTO t VALUES ('a')")
            assert checkpointer.checkpoint(conn)
            assert not checkpointer.checkpoint(conn)
            # a reader on an old snapshot keeps the newest pages from being copied
            reader = sqlite3.connect(db, isolation_level=None)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
            writer.execute("INSERT INTO t VALUES ('b')")
            assert checkpointer.checkpoint(conn)
            assert checkpointer.checkpoint(conn)  # still pages to copy: soon again
            reader.execute("COMMIT")
            reader.close()
            assert checkpointer.checkpoint(conn)
            assert not checkpointer.checkpoint(conn)
        assert checkpointer.checkpoints == 8
