"""One writer thread per database, with group commit.

Every write is a function of a connection, submitted from the event loop. The writer thread takes
all the functions waiting at that moment, runs each inside its own savepoint of one transaction
(a function alone needs none: the transaction is its own), commits once, and then resolves every
caller's future. Many concurrent publishes thus share one fsync, and one failing function rolls
back only itself.

A job is durable (the default: the commit is synced to disk before its caller hears of it) or
not (the worker's bookkeeping). A batch of non-durable jobs only commits without a sync
(`synchronous = NORMAL` in WAL mode: still atomic, and the next durable commit syncs it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("hookd.store.sqlite")

_Job = tuple[
    Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop, bool
]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _run_alone(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]
) -> tuple[Any, BaseException | None]:
    """A job alone in its transaction needs no savepoint of its own (two statements fewer, each
    a handover of the GIL): it commits, or on a failure it rolls the transaction back."""
    try:
        result = fn(conn)
    except Exception as exc:
        conn.rollback()
        return None, exc
    conn.execute("COMMIT")
    return result, None


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = 1024,
        synchronous: str = "FULL",
        on_begin: Callable[[sqlite3.Connection], None] | None = None,
        turn: Path | None = None,
    ) -> None:
        """`synchronous`: the level durable commits use (the connection starts at it).
        `on_begin`: called in each transaction before its jobs run (a failure fails them all).
        `turn`: a lock file that several processes writing one database take in turn around
        each transaction (flock: a waiting writer is woken the moment the lock is free, where
        SQLite's own busy handler would sleep and poll). The jobs a writer is given while it
        waits for its turn join that turn's transaction: under contention, a worker's claim
        and its record of results share one turn and one commit."""
        self._on_begin = on_begin
        self._turn_path = turn
        self._turn: IO[bytes] | None = None
        self._connect = connect
        self._synchronous = synchronous
        self._current = synchronous
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hookd-sqlite-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True
    ) -> asyncio.Future[T]:
        if self._thread is None:
            raise RuntimeError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop, durable))
        return future

    def _run(self) -> None:
        try:
            conn = self._connect()
            if self._turn_path is not None:
                self._turn = self._turn_path.open("ab")
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                # The turn first, then the jobs: those submitted while another process held
                # the turn join this transaction (a claim and a record made while waiting
                # share one turn and one commit, instead of waiting for a turn each).
                self._take_turn()
                try:
                    batch, stop = self._gather(first)
                    outcomes = self._run_batch(conn, batch)
                finally:
                    self._end_turn()
                _answer(batch, outcomes)  # the callers hear after the turn is given back
                if stop:
                    return
        finally:
            conn.close()
            if self._turn is not None:
                self._turn.close()
                self._turn = None

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and the jobs waiting behind it (up to `max_batch`); and whether a stop was
        met among them (the jobs before it run, then the writer stops)."""
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _take_turn(self) -> None:
        if self._turn is not None:
            fcntl.flock(self._turn.fileno(), fcntl.LOCK_EX)

    def _end_turn(self) -> None:
        if self._turn is not None:
            fcntl.flock(self._turn.fileno(), fcntl.LOCK_UN)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> list[tuple[Any, BaseException | None]]:
        """The batch in one transaction: each job's result or error, in the batch's order."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            level = self._synchronous if any(job[3] for job in batch) else "NORMAL"
            if level != self._current:
                conn.execute(f"PRAGMA synchronous = {level}")
                self._current = level
            conn.execute("BEGIN IMMEDIATE")
            if self._on_begin is not None:
                self._on_begin(conn)
            if len(batch) == 1:  # alone in its transaction: a failure rolls that back
                outcomes.append(_run_alone(conn, batch[0][0]))
            else:
                for fn, _, _, _ in batch:
                    conn.execute("SAVEPOINT job")
                    try:
                        result = fn(conn)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                        outcomes.append((None, exc))
                    else:
                        conn.execute("RELEASE job")
                        outcomes.append((result, None))
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("sqlite transaction failed: %s", exc)
            if conn.in_transaction:
                conn.rollback()
            outcomes = [(None, exc)] * len(batch)
        return outcomes


def _answer(batch: list[_Job], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    for (_, future, loop, _), (result, error) in zip(batch, outcomes, strict=True):
        # RuntimeError: the caller's loop has closed; nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, error)
