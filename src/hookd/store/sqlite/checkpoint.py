"""WAL checkpoints, mostly on a thread of their own, off the writer's path.

In WAL mode every commit appends pages to `<db>-wal`; a checkpoint copies them back into the
database file and syncs it, and the first commit after a checkpoint that copied everything
starts the WAL over from its beginning. SQLite's default runs a checkpoint inside the COMMIT
that takes the WAL past 1,000 pages, on the writer's connection: the writer stops taking work
while it copies pages and waits for two fsyncs (a tenth of its time under a steady delivery load,
by py-spy).

The owner of a database runs this instead: a PASSIVE checkpoint on its own connection, which
never blocks a writer or a reader, every `busy_interval` seconds while the WAL changes and
every `idle_interval` seconds once it has nothing left to copy. It cannot start the WAL over by
itself: under a steady load a commit always lands while it copies, so it never finds the WAL
fully copied. That is left to the writers (the owner's and its worker processes'), which keep
SQLite's own checkpoint but only past `WAL_RESTART_PAGES` (store.py): by then this thread has
copied all but the last `busy_interval` of commits, so theirs is short, and the WAL stays within
about that many pages. What a commit made durable stays durable: a checkpoint only copies
synced pages.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("hookd.store.sqlite")


class Checkpointer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        busy_interval: float = 0.1,
        idle_interval: float = 1.0,
    ) -> None:
        self._connect = connect
        self._busy = busy_interval
        self._idle = idle_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: checkpoints run since the start (for tests and the curious)
        self.checkpoints = 0
        self._seen: tuple[int, int] = (0, 0)  # the WAL's frames and copied frames at the last one

    def start(self) -> None:
        conn = self._connect()  # in the caller: a database that cannot be opened fails here
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="hookd-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            wait = self._idle
            while not self._stop.wait(wait):
                wait = self._busy if self.checkpoint(conn) else self._idle
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One PASSIVE checkpoint; whether the WAL changed since the last one or still has pages
        to copy (then the next comes soon)."""
        try:
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # e.g. a full disk: the writer reports its own errors
            log.warning("sqlite checkpoint failed: %s", exc)
            return False
        self.checkpoints += 1
        seen, self._seen = self._seen, (frames, copied)
        return (frames, copied) != seen or copied < frames
