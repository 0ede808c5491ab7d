"""The SQLite writer's turn: several processes writing one database take a lock file in turn
around each transaction; what a writer was given while it waited for its turn goes into that
turn's one transaction."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hookd.store.sqlite.writer import Writer


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    conn = _connect(path)
    conn.execute("CREATE TABLE t (job INTEGER PRIMARY KEY, tx INTEGER NOT NULL)")
    conn.close()
    return path


class Transactions:
    """`on_begin`: counts the writer's transactions; a job records the one it ran in."""

    def __init__(self) -> None:
        self.count = 0

    def begin(self, _conn: sqlite3.Connection) -> None:
        self.count += 1

    def job(self, number: int, *, fail: bool = False) -> Callable[[sqlite3.Connection], int]:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t (job, tx) VALUES (?, ?)", (number, self.count))
            if fail:
                raise ValueError(f"job {number} fails")
            return number

        return run


async def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _rows(db: Path) -> dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT job, tx FROM t").fetchall())
    finally:
        conn.close()


async def test_jobs_given_while_another_process_has_the_turn_share_one_transaction(
    db: Path,
) -> None:
    turn = db.with_name("w.db.write")
    seen = Transactions()
    writer = Writer(lambda: _connect(db), turn=turn, on_begin=seen.begin)
    writer.start()
    holder = turn.open("ab")  # another process's writer, in the middle of its turn
    try:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        first = writer.submit(seen.job(1), durable=False)
        # the writer has taken the first job and waits for the turn ...
        await _wait_for(lambda: writer._queue.empty())
        await asyncio.sleep(0.05)
        # ... while a claim, a record and a publish arrive
        rest = [writer.submit(seen.job(n), durable=n != 3) for n in (2, 3, 4)]
        await asyncio.sleep(0.05)
        assert not first.done()
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        assert await asyncio.gather(first, *rest) == [1, 2, 3, 4]
    finally:
        holder.close()
        writer.stop()
    assert seen.count == 1
    assert _rows(db) == {1: 1, 2: 1, 3: 1, 4: 1}


async def test_a_failing_job_in_a_shared_turn_rolls_back_only_itself(db: Path) -> None:
    turn = db.with_name("w.db.write")
    seen = Transactions()
    writer = Writer(lambda: _connect(db), turn=turn, on_begin=seen.begin)
    writer.start()
    holder = turn.open("ab")
    try:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        first = writer.submit(seen.job(1))
        await _wait_for(lambda: writer._queue.empty())
        await asyncio.sleep(0.05)
        failing = writer.submit(seen.job(2, fail=True))
        last = writer.submit(seen.job(3))
        await asyncio.sleep(0.05)
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        assert await first == 1
        with pytest.raises(ValueError, match="job 2 fails"):
            await failing
        assert await last == 3
    finally:
        holder.close()
        writer.stop()
    assert seen.count == 1
    assert _rows(db) == {1: 1, 3: 1}


async def test_the_turn_is_given_back_after_each_transaction(db: Path) -> None:
    """Between its transactions a writer holds no turn: another process gets it at once."""
    turn = db.with_name("w.db.write")
    writer = Writer(lambda: _connect(db), turn=turn)
    writer.start()
    other = turn.open("ab")
    try:
        seen = Transactions()
        assert await writer.submit(seen.job(1)) == 1
        taken = threading.Event()

        def take() -> None:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if held
            taken.set()
            fcntl.flock(other.fileno(), fcntl.LOCK_UN)

        await asyncio.to_thread(take)
        assert taken.is_set()
    finally:
        other.close()
        writer.stop()
