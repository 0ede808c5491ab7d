"""`SqliteStore`: the storage port on one SQLite file.

- WAL journal, `synchronous=FULL` by default: a commit is on disk before the caller hears of it.
- Writes (publish, claim, record, …) go through one writer thread with group commit (writer.py).
- Reads run on a small pool of read-only connections, concurrently with the writer.
- One process owns a database file at a time (an advisory lock on `<file>.lock`); that is what
  lets `recover` free every lease at start-up instead of waiting for them to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from hookd.crypto import SecretBox
from hookd.domain import errors, ids
from hookd.domain.models import (
    ENDED_STATUSES,
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointStatus,
    Event,
    EventType,
    PublishResult,
    first_status,
)
from hookd.policy import admission
from hookd.policy.patterns import PatternSet
from hookd.store import codec
from hookd.store.port import (
    ENDPOINT_CHANGED,
    ApiKey,
    AttemptSample,
    BreakerChange,
    DeliveryCount,
    DeliveryFilter,
    EventFilter,
    Gate,
    Page,
    QueueCounts,
    ThrottleGrant,
    ThrottleRequest,
)
from hookd.store.sql import load_migrations, load_queries
from hookd.store.sqlite.checkpoint import Checkpointer
from hookd.store.sqlite.writer import Writer

T = TypeVar("T")

Q = load_queries("hookd.store.sqlite", "queries.sql")

_KEY_CHECK = "secret_key_check"
#: meta key: a counter every change to an endpoint's settings or status moves on, so that the
#: caches of the other processes writing this database see the change (`shared`)
_ENDPOINTS_VERSION = "endpoints_version"
#: The file beside the database whose bytes change whenever an event type does (`shared`).
TYPES_STAMP_SUFFIX = ".types"
#: The WAL size (pages) at which a writer's commit checkpoints what the owner's Checkpointer has
#: not copied yet, so that the WAL starts over (checkpoint.py); SQLite's default is 1,000.
WAL_RESTART_PAGES = 4000
#: What the WAL file is cut back to when it starts over (bytes).
WAL_SIZE_LIMIT = 64 * 1024 * 1024
#: How long an owner waits, when it opens, for worker processes of an earlier run to finish.
HELPERS_WAIT = 60.0
_EVENT_TYPE_CACHE = 10_000  # names cached per tenant at most

#: One fan-out target: endpoint id, its compiled patterns, whether it is active, its default
#: priority, whether it is FIFO.
_Target = tuple[str, PatternSet, bool, int, bool]
#: A publish waiting for the writer: its events, idempotency window, and caller.
_Publish = tuple[Sequence[Event], float | None, "asyncio.Future[list[PublishResult]]"]
#: What became of one: its results, or the error.
_Outcome = tuple[list[PublishResult] | None, BaseException | None]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version. Each migration is one transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at REAL NOT NULL) STRICT"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    version = max(applied, default=0)
    for number, name, script in load_migrations("hookd.store.sqlite.migrations"):
        if number in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_script(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        version = number
    return version


def _split_script(script: str) -> list[str]:
    """Statements of a migration script (no statement in our scripts contains a semicolon)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class SqliteStore:
    def __init__(
        self,
        path: str | os.PathLike[str],
        box: SecretBox,
        *,
        synchronous: str = "FULL",
        readers: int = 4,
        exclusive: bool = True,
        shared: bool = False,
        helpers_wait: float = HELPERS_WAIT,
    ) -> None:
        """`exclusive`: this process owns the database (`hookd serve`, `hookd worker`): no other
        owner may open it, and the leases left in it by an earlier run are freed at the start.
        `shared`: other processes write it too (an owner's worker processes, and those worker
        processes themselves, opened with `exclusive=False`): endpoint caches are checked
        against the database's version of them, and an owner opening the database first waits
        (up to `helpers_wait` seconds) for the worker processes of an earlier run to finish."""
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise errors.ConfigError("sqlite synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self._box = box
        self._synchronous = synchronous.upper()
        self._exclusive = exclusive
        self._shared = shared
        self._helpers_wait = helpers_wait
        self._helpers_lock: IO[str] | None = None
        self._writer = Writer(
            self._connect_writer,
            synchronous=self._synchronous,
            on_begin=self._check_targets if shared else None,
            turn=self.path.with_name(self.path.name + ".write") if shared else None,
        )
        # The owner checkpoints the WAL off every writer's path, its worker processes' too.
        self._checkpointer = (
            Checkpointer(functools.partial(self._connect, readonly=False)) if exclusive else None
        )
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="hookd-sqlite-r")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        # publishes waiting for the writer job that takes them all (`publish`)
        self._publishing: list[_Publish] = []
        self._publishing_lock = threading.Lock()
        # fan-out targets per tenant; touched only on the writer thread
        self._targets: dict[str, list[_Target]] = {}
        # the worker's endpoint cache; touched only on the event loop
        self._endpoints: dict[str, Endpoint] = {}
        self._endpoints_generation = 0
        self._endpoints_version: str | None = None  # of the cache above (`shared` only)
        self._targets_version: str | None = None  # of `_targets`, on the writer thread
        # event types by tenant and name, None for "not declared"; touched only on the event loop
        self._event_types: dict[str, dict[str, EventType | None]] = {}
        self._event_types_generation = 0
        # `shared`: what the stamp held when the cache above was last known to be exact
        self._types_stamp: SharedStamp | None = None
        self._types_seen = b""
        self._open = False

    # lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._open:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._exclusive:
            self._take_lock()
        try:
            await asyncio.to_thread(self._join_helpers)
            if self._shared:
                self._types_stamp = SharedStamp(types_stamp_path(self.path))
        except BaseException:
            self._release_lock()
            raise
        try:
            self._writer.start()
            await self._write(self._check_key)
            if self._checkpointer is not None:
                self._checkpointer.start()
        except sqlite3.Error as exc:
            self._writer.stop()
            self._release_lock()
            raise errors.StoreError(f"cannot open {self.path}: {exc}") from exc
        except BaseException:
            self._writer.stop()
            self._release_lock()
            raise
        self._open = True

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._types_stamp is not None:
            self._types_stamp.close()
            self._types_stamp = None
        self._release_lock()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise errors.ConfigError(
                f"{self.path} is in use by another hookd process; SQLite serves one process "
                "(use PostgreSQL to run several)"
            ) from None
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        if self._helpers_lock is not None:
            fcntl.flock(self._helpers_lock.fileno(), fcntl.LOCK_UN)
            self._helpers_lock.close()
            self._helpers_lock = None

    def _join_helpers(self) -> None:
        """Worker processes hold `<db>.workers` shared while they have the database open. An
        owner takes it exclusively once, before anything else: the worker processes of an
        earlier run (their owner was killed; they stop when they notice) have all finished
        before this run frees the leases they held. A worker process takes it shared."""
        if not (self._exclusive or self._shared):
            return
        handle = self.path.with_name(self.path.name + ".workers").open("a+")
        mode = fcntl.LOCK_EX if self._exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self._helpers_wait
        while True:
            try:
                fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise errors.ConfigError(
                        f"worker processes of an earlier hookd run still use {self.path}; "
                        "they stop by themselves within the shutdown grace: try again, or stop "
                        "them (`hookd.delivery.helper` processes)"
                    ) from None
                time.sleep(0.05)
        if self._exclusive:  # they are gone; this run's worker processes take it shared
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
        else:
            self._helpers_lock = handle

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect(readonly=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
        if self._exclusive or self._shared:  # the owner's Checkpointer does most (checkpoint.py)
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_RESTART_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        migrate(conn)
        return conn

    def _check_key(self, conn: sqlite3.Connection) -> None:
        row = conn.execute(Q["get_meta"], {"key": _KEY_CHECK}).fetchone()
        if row is None:
            conn.execute(Q["put_meta"], {"key": _KEY_CHECK, "value": self._box.check_value()})
        else:
            self._box.verify_check_value(row[0])

    # plumbing ----------------------------------------------------------------------------------
    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run `fn` in the writer's next transaction. `durable=False`: the worker's bookkeeping
        (claims, leases, attempt results, throttling), which need not reach the disk before the
        caller goes on: a commit made of such writes only is not synced (WAL, synchronous
        NORMAL), the next durable one syncs it too. Only an operating-system crash or power loss
        can take them back, and what they would lose is at-least-once safe: a delivery whose
        result is lost is sent again, with the same webhook-id."""
        try:
            return await self._writer.submit(fn, durable=durable)
        except sqlite3.Error as exc:
            raise errors.StoreError(f"sqlite write failed: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))
        except sqlite3.Error as exc:
            raise errors.StoreError(f"sqlite read failed: {exc}") from exc

    def _check_targets(self, conn: sqlite3.Connection) -> None:
        """At the start of each write transaction (`shared` only): drop the fan-out targets
        when another process changed an endpoint since they were read."""
        version = _endpoints_version(conn)
        if version != self._targets_version:
            self._targets.clear()
            self._targets_version = version

    def _endpoints_changed(self, conn: sqlite3.Connection, tenant_id: str) -> None:
        """Called on the writer thread inside a transaction that changed an endpoint: the
        change moves the database's endpoints version on (for the other processes' caches)."""
        self._targets.pop(tenant_id, None)
        conn.execute(Q["bump_version"], {"key": _ENDPOINTS_VERSION})

    def _forget_endpoint(self, endpoint_id: str) -> None:
        self._endpoints.pop(endpoint_id, None)
        self._endpoints_generation += 1

    # API keys ----------------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey) -> None:
        params = {
            "id": key.id,
            "tenant_id": key.tenant_id,
            "name": key.name,
            "prefix": key.prefix,
            "key_hash": key.key_hash,
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }
        await self._write(lambda c: c.execute(Q["insert_api_key"], params))

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._read(
            lambda c: c.execute(Q["find_api_key"], {"key_hash": key_hash}).fetchone()
        )
        return None if row is None else ApiKey(**dict(row))

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKey]:
        rows = await self._read(
            lambda c: c.execute(Q["list_api_keys"], {"tenant_id": tenant_id}).fetchall()
        )
        return [ApiKey(**dict(row)) for row in rows]

    async def get_api_key(self, tenant_id: str | None, key_id: str) -> ApiKey | None:
        params = {"id": key_id, "tenant_id": tenant_id}
        row = await self._read(lambda c: c.execute(Q["get_api_key"], params).fetchone())
        return None if row is None else ApiKey(**dict(row))

    async def revoke_api_key(
        self, tenant_id: str | None, key_id: str, *, now: float
    ) -> ApiKey | None:
        params = {"id": key_id, "tenant_id": tenant_id, "now": now}

        def run(conn: sqlite3.Connection) -> ApiKey | None:
            conn.execute(Q["revoke_api_key"], params)
            row = conn.execute(Q["get_api_key"], params).fetchone()
            return None if row is None else ApiKey(**dict(row))

        return await self._write(run)

    # event types -------------------------------------------------------------------------------
    async def create_event_type(self, event_type: EventType) -> None:
        row = codec.event_type_to_row(event_type)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute(Q["get_event_type"], row).fetchone() is not None:
                raise errors.Conflict(f"event type {event_type.name!r} already exists")
            conn.execute(Q["insert_event_type"], row)

        try:
            await self._write(run)
        finally:
            self._forget_event_types(event_type.tenant_id)

    async def update_event_type(self, event_type: EventType) -> None:
        row = codec.event_type_to_row(event_type)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute(Q["update_event_type"], row).rowcount == 0:
                raise errors.NotFound("event type", event_type.name)

        try:
            await self._write(run)
        finally:
            self._forget_event_types(event_type.tenant_id)

    def _forget_event_types(self, tenant_id: str) -> None:
        self._event_types.pop(tenant_id, None)
        self._event_types_generation += 1
        if self._types_stamp is not None:  # the other processes' caches: after the commit
            self._types_stamp.touch()

    async def get_event_type(self, tenant_id: str, name: str) -> EventType | None:
        params = {"tenant_id": tenant_id, "name": name}
        row = await self._read(lambda c: c.execute(Q["get_event_type"], params).fetchone())
        return None if row is None else codec.event_type_from_row(row)

    async def event_types_by_name(
        self, tenant_id: str, names: Collection[str]
    ) -> dict[str, EventType]:
        # Every publish asks this, so answers (including "not declared") are cached. A write
        # here drops the tenant's entries (and a read racing it is not kept); when other
        # processes write the database (`shared`), a write there changes the stamp (after its
        # commit, before its answer), and a changed stamp drops every entry: the cache is exact,
        # for the price of reading 8 bytes of shared memory per call.
        stamp = self._types_stamp
        if stamp is not None and (seen := stamp.read()) != self._types_seen:
            self._event_types.clear()
            self._event_types_generation += 1
            self._types_seen = seen
        known = self._event_types.get(tenant_id, {})
        missing = [n for n in names if n not in known]
        if missing:
            generation = self._event_types_generation
            params = {"tenant_id": tenant_id, "names": codec.dumps(missing)}
            rows = await self._read(
                lambda c: c.execute(Q["event_types_by_name"], params).fetchall()
            )
            loaded: dict[str, EventType | None] = dict.fromkeys(missing)
            loaded.update({r["name"]: codec.event_type_from_row(r) for r in rows})
            if generation == self._event_types_generation:
                cached = self._event_types.setdefault(tenant_id, {})
                if len(cached) > _EVENT_TYPE_CACHE:  # endless distinct names: start over
                    cached.clear()
                cached.update(loaded)
            known = {**known, **loaded}
        return {n: t for n in names if (t := known.get(n)) is not None}

    async def list_event_types(
        self,
        tenant_id: str | None,
        *,
        include_archived: bool,
        limit: int,
        cursor: str | None = None,
    ) -> Page[EventType]:
        params = {
            "tenant_id": tenant_id,
            "include_archived": include_archived,
            "cursor": cursor,
            "limit": limit + 1,
        }
        rows = await self._read(lambda c: c.execute(Q["list_event_types"], params).fetchall())
        return _page([codec.event_type_from_row(r) for r in rows], limit)

    # endpoints ---------------------------------------------------------------------------------
    async def create_endpoint(self, endpoint: Endpoint) -> None:
        row = codec.endpoint_to_row(endpoint, self._box)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["insert_endpoint"], row)
            self._endpoints_changed(conn, endpoint.tenant_id)

        await self._write(run)
        self._forget_endpoint(endpoint.id)

    async def update_endpoint(
        self, endpoint: Endpoint, *, expected_updated_at: float | None = None
    ) -> None:
        row = codec.endpoint_to_row(endpoint, self._box)

        def run(conn: sqlite3.Connection) -> None:
            key = {"id": endpoint.id, "tenant_id": endpoint.tenant_id}
            before = conn.execute(Q["endpoint_version"], key).fetchone()
            if before is None:
                raise errors.NotFound("endpoint", endpoint.id)
            if expected_updated_at is not None and before[1] != expected_updated_at:
                raise errors.Conflict(ENDPOINT_CHANGED)
            conn.execute(Q["update_endpoint"], row)
            self._apply_status_change(
                conn, endpoint.id, before[0], endpoint.status.value, endpoint.updated_at
            )
            if endpoint.ordering is not EndpointOrdering.FIFO:  # nothing waits in a queue
                params = {"endpoint_id": endpoint.id, "now": endpoint.updated_at}
                conn.execute(Q["release_queued"], params)
            else:  # e.g. resumed after its head was purged: the next one goes
                params = {"endpoint_ids": codec.dumps([endpoint.id]), "now": endpoint.updated_at}
                conn.execute(Q["promote_fifo_heads"], params)
            self._endpoints_changed(conn, endpoint.tenant_id)

        await self._write(run)
        self._forget_endpoint(endpoint.id)

    @staticmethod
    def _apply_status_change(
        conn: sqlite3.Connection, endpoint_id: str, before: str, after: str, now: float
    ) -> None:
        active = EndpointStatus.ACTIVE.value
        if before == active and after != active:
            conn.execute(Q["park_endpoint_deliveries"], {"endpoint_id": endpoint_id, "now": now})
        elif before != active and after == active:
            conn.execute(Q["resume_endpoint_deliveries"], {"endpoint_id": endpoint_id, "now": now})

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint | None:
        row = await self._read(
            lambda c: c.execute(
                Q["get_endpoint"], {"id": endpoint_id, "tenant_id": tenant_id}
            ).fetchone()
        )
        return None if row is None else codec.endpoint_from_row(row, self._box)

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]:
        params = {"tenant_id": tenant_id, "cursor": cursor, "limit": limit + 1}
        rows = await self._read(lambda c: c.execute(Q["list_endpoints"], params).fetchall())
        items = [codec.endpoint_from_row(r, self._box) for r in rows]
        return _page(items, limit)

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                Q["get_endpoint"], {"id": endpoint_id, "tenant_id": tenant_id}
            ).fetchone()
            if row is None:
                return False
            conn.execute(Q["delete_endpoint"], {"id": endpoint_id, "tenant_id": tenant_id})
            self._endpoints_changed(conn, row["tenant_id"])
            return True

        deleted = await self._write(run)
        self._forget_endpoint(endpoint_id)
        return deleted

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        if self._shared:  # another process may have changed one: a read per call (a batch)
            version = await self._read(_endpoints_version)
            if version != self._endpoints_version:
                self._endpoints.clear()
                self._endpoints_generation += 1
                self._endpoints_version = version
        found = {i: self._endpoints[i] for i in endpoint_ids if i in self._endpoints}
        missing = [i for i in endpoint_ids if i not in found]
        if missing:
            generation = self._endpoints_generation
            params = {"ids": codec.dumps(missing)}
            rows = await self._read(lambda c: c.execute(Q["endpoints_by_ids"], params).fetchall())
            loaded = {r["id"]: codec.endpoint_from_row(r, self._box) for r in rows}
            if generation == self._endpoints_generation:
                self._endpoints.update(loaded)
            found.update(loaded)
        return found

    # events ------------------------------------------------------------------------------------
    def _fanout_targets(self, conn: sqlite3.Connection, tenant_id: str) -> list[_Target]:
        targets = self._targets.get(tenant_id)
        if targets is None:
            rows = conn.execute(Q["fanout_targets"], {"tenant_id": tenant_id}).fetchall()
            targets = [
                (
                    r["id"],
                    PatternSet(orjson.loads(r["event_types"])),
                    r["status"] == "active",
                    r["default_priority"],
                    r["ordering"] == EndpointOrdering.FIFO.value,
                )
                for r in rows
            ]
            self._targets[tenant_id] = targets
        return targets

    async def publish(
        self, events: Sequence[Event], *, idempotent_since: float | None = None
    ) -> list[PublishResult]:
        """Publishes waiting at the same time share one writer job (`_publish_waiting`): their
        rows go in together, with one statement per table rather than per call. A call that
        fails alone is retried alone, so one publish's failure is still only its own."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[PublishResult]] = loop.create_future()
        with self._publishing_lock:
            self._publishing.append((events, idempotent_since, waiter))
            first = len(self._publishing) == 1
        if first:  # else the job that takes the others is not started yet: it takes this one too
            taken: list[_Publish] = []
            try:
                job = self._writer.submit(lambda c: self._publish_waiting(c, taken))
            except RuntimeError as exc:  # the writer is not running: nobody will take them
                with self._publishing_lock:
                    stranded = self._publishing[:]
                    self._publishing.clear()
                _answer_publishes(stranded, [(None, exc)] * len(stranded))
            else:
                job.add_done_callback(lambda done: _answer_publishes(taken, _outcomes(done)))
        try:
            return await waiter
        except sqlite3.Error as exc:
            raise errors.StoreError(f"sqlite write failed: {exc}") from exc

    def _publish_waiting(self, conn: sqlite3.Connection, taken: list[_Publish]) -> list[_Outcome]:
        """On the writer thread: every waiting publish, in one go if they all succeed."""
        with self._publishing_lock:
            taken.extend(self._publishing)
            self._publishing.clear()
        groups = [(events, since) for events, since, _ in taken]
        if len(groups) == 1:  # the writer isolates it (a savepoint, or a transaction of its own)
            return [(self._publish_groups(conn, groups)[0], None)]
        conn.execute("SAVEPOINT publish_all")
        try:
            together = self._publish_groups(conn, groups)
        except Exception:  # find whose it is: each again, in its own savepoint
            conn.execute("ROLLBACK TO publish_all")
        else:
            conn.execute("RELEASE publish_all")
            return [(results, None) for results in together]
        conn.execute("RELEASE publish_all")
        outcomes: list[_Outcome] = []
        for group in groups:
            conn.execute("SAVEPOINT publish_one")
            try:
                (results,) = self._publish_groups(conn, [group])
            except Exception as exc:
                conn.execute("ROLLBACK TO publish_one")
                outcomes.append((None, exc))
            else:
                outcomes.append((results, None))
            conn.execute("RELEASE publish_one")
        return outcomes

    def _publish_in(
        self,
        conn: sqlite3.Connection,
        events: Sequence[Event],
        idempotent_since: float | None,
        *,
        exclude: str | None = None,
    ) -> list[PublishResult]:
        """Publish inside the caller's transaction (on the writer thread); no delivery is made
        for the endpoint `exclude`."""
        return self._publish_groups(conn, [(events, idempotent_since)], exclude=exclude)[0]

    def _publish_groups(
        self,
        conn: sqlite3.Connection,
        groups: Sequence[tuple[Sequence[Event], float | None]],
        *,
        exclude: str | None = None,
    ) -> list[list[PublishResult]]:
        """`_publish_in` for several calls' events at once (each with its own idempotency window),
        in order; the results of each call.

        The events and their deliveries are inserted together, a few multi-row INSERTs per table
        (`_insert_rows`), not one statement or step per event. An idempotency key
        already used by an event here that is not inserted yet flushes the rows first, so the
        lookup sees that event exactly as if each had been inserted in turn.
        """
        grouped: list[list[PublishResult]] = []
        fifo: set[str] = set()  # FIFO endpoints that got deliveries (queued)
        event_values: list[Any] = []  # `_INSERT_EVENT`'s values, row after row
        fanned: list[tuple[Event, list[_Target]]] = []  # events with deliveries, their targets
        unflushed_keys: set[tuple[str, str]] = set()  # (tenant, idempotency key) not flushed
        matching: dict[tuple[str, str], list[_Target]] = {}  # (tenant, type) -> its targets

        def flush() -> None:
            _insert_values(conn, _INSERT_EVENT, event_values, _EVENT_COLUMNS)
            _insert_values(conn, Q["insert_delivery"], _delivery_values(fanned), _DELIVERY_COLUMNS)
            event_values.clear()
            fanned.clear()
            unflushed_keys.clear()

        for events, idempotent_since in groups:
            results: list[PublishResult] = []
            grouped.append(results)
            for event in events:
                key = event.idempotency_key
                if key is not None:
                    if (event.tenant_id, key) in unflushed_keys:
                        flush()
                    row = conn.execute(
                        Q["find_idempotent_event"],
                        {"tenant_id": event.tenant_id, "key": key, "since": idempotent_since},
                    ).fetchone()
                    if row is not None:
                        count = conn.execute(
                            Q["count_event_deliveries"], {"event_id": row["id"]}
                        ).fetchone()[0]
                        results.append(PublishResult(codec.event_from_row(row), count, True))
                        continue
                    unflushed_keys.add((event.tenant_id, key))
                event_values += (
                    event.id,
                    event.tenant_id,
                    event.type,
                    event.payload,
                    event.occurred_at,
                    event.created_at,
                    key,
                    event.priority,
                )
                targets = matching.get((event.tenant_id, event.type))
                if targets is None:
                    targets = matching[(event.tenant_id, event.type)] = [
                        target
                        for target in self._fanout_targets(conn, event.tenant_id)
                        if target[1].matches(event.type) and target[0] != exclude
                    ]
                    fifo.update(target[0] for target in targets if target[4])
                if targets:
                    fanned.append((event, targets))
                results.append(PublishResult(event, len(targets)))
        flush()
        if fifo:  # a FIFO endpoint without a head: its oldest queued delivery is next
            params = {"endpoint_ids": codec.dumps(sorted(fifo)), "now": time.time()}
            conn.execute(Q["promote_fifo_heads"], params)
        return grouped

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event | None:
        row = await self._read(
            lambda c: c.execute(Q["get_event"], {"id": event_id, "tenant_id": tenant_id}).fetchone()
        )
        return None if row is None else codec.event_from_row(row)

    async def list_events(
        self,
        tenant_id: str | None,
        filter: EventFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Event]:
        params = {
            "tenant_id": tenant_id,
            "cursor": cursor,
            "limit": limit + 1,
            **codec.event_filter_params(filter),
        }
        rows = await self._read(lambda c: c.execute(Q["list_events"], params).fetchall())
        return _page([codec.event_from_row(r) for r in rows], limit)

    # the worker's side -------------------------------------------------------------------------
    async def claim(
        self, *, worker_id: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        params = {
            "worker_id": worker_id,
            "lease_until": now + lease_seconds,
            "now": now,
            "limit": limit,
        }

        def run(conn: sqlite3.Connection) -> list[ClaimedDelivery]:
            rows = orjson.loads(conn.execute(Q["claim_due"], params).fetchone()[0])
            if not rows:
                return []
            ids_json = codec.dumps([r[0] for r in rows])
            conn.execute(Q["claim_mark"], {**params, "ids": ids_json})
            bodies = _bodies(conn, codec.dumps(list({r[2] for r in rows})))
            # positional: a NamedTuple built from keywords costs twice as much
            claimed = [
                ClaimedDelivery(r[0], r[1], r[2], r[3], r[4], r[5], bodies[r[2]], r[6], bool(r[7]))
                for r in rows
            ]
            claimed.sort(key=lambda c: -c.priority)
            return claimed

        return await self._write(run, durable=False)

    async def record(
        self, *, worker_id: str, results: Sequence[AttemptResult], now: float
    ) -> list[BreakerChange]:
        attempts = [codec.attempt_to_params(r.attempt) for r in results]
        updates = [
            (
                r.status.value,
                r.next_attempt_at,
                r.attempt.status_code,
                codec.storable(r.attempt.error),
                now,
                r.attempt.delivery_id,
                worker_id,
                r.to_fallback,
            )
            for r in results
        ]
        disables = {
            r.attempt.endpoint_id: r.disable_endpoint_reason
            for r in results
            if r.disable_endpoint_reason is not None
        }
        succeeded, failed = _health(results)
        # endpoints whose delivery ended: if FIFO, their next delivery may go
        ended = sorted({r.attempt.endpoint_id for r in results if r.status in ENDED_STATUSES})
        outcomes = admission.breaker_outcomes(results)
        # the whole batch as one statement's JSON (one step of the writer, see _insert_rows)
        completions = codec.dumps([[u[5], u[0], u[1], u[2], u[3], u[7]] for u in updates])

        def run(conn: sqlite3.Connection) -> list[BreakerChange]:
            _insert_rows(conn, Q["insert_attempt"], attempts)
            params = {"rows": completions, "now": now, "worker_id": worker_id}
            conn.execute(Q["complete_deliveries"], params)
            if succeeded:
                conn.execute(Q["endpoints_succeeded"], {"ids": codec.dumps(succeeded), "now": now})
            if failed:
                conn.execute(Q["endpoints_failing"], {"ids": codec.dumps(list(failed)), "now": now})
            for endpoint_id, after in failed.items():
                if after is not None and endpoint_id not in disables:
                    params = {"id": endpoint_id, "now": now, "disable_after": after}
                    if conn.execute(Q["failing_too_long"], params).fetchone() is not None:
                        disables[endpoint_id] = codec.failing_reason(after)
            for endpoint_id, reason in disables.items():
                changed = conn.execute(
                    Q["disable_endpoint"], {"id": endpoint_id, "reason": reason, "now": now}
                ).rowcount
                if changed:
                    conn.execute(
                        Q["park_endpoint_deliveries"], {"endpoint_id": endpoint_id, "now": now}
                    )
                    found = conn.execute(Q["endpoint_tenant"], {"id": endpoint_id}).fetchone()
                    if found is not None:
                        self._endpoints_changed(conn, found[0])
                        event = codec.disabled_event(found[0], endpoint_id, found[1], reason, now)
                        self._publish_in(conn, [event], None, exclude=endpoint_id)
            if ended:
                conn.execute(
                    Q["promote_fifo_heads"], {"endpoint_ids": codec.dumps(ended), "now": now}
                )
            return _settle_breakers(conn, outcomes, now)

        changes = await self._write(run, durable=False)
        for endpoint_id in disables:
            self._forget_endpoint(endpoint_id)
        return changes

    async def release(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        params = {"worker_id": worker_id, "ids": codec.dumps(list(delivery_ids)), "now": now}
        return await self._write(
            lambda c: c.execute(Q["release_leases"], params).rowcount, durable=False
        )

    async def release_worker(self, *, worker_id: str, now: float) -> int:
        params = {"worker_id": worker_id, "now": now}
        return await self._write(
            lambda c: c.execute(Q["release_worker_leases"], params).rowcount, durable=False
        )

    async def defer(self, *, worker_id: str, until: Mapping[str, float], now: float) -> None:
        rows = [(due, now, delivery_id, worker_id) for delivery_id, due in until.items()]
        if rows:
            await self._write(
                lambda c: c.executemany(Q["defer_lease"], rows).rowcount, durable=False
            )

    async def throttle(
        self, *, requests: Sequence[ThrottleRequest], now: float
    ) -> dict[str, ThrottleGrant]:
        if not requests:
            return {}
        # Read first, off the writer (as on PostgreSQL): see admission.admit_unlocked. The rest
        # are decided on in the writer.
        seen = await self._read(lambda c: _load_gates(c, [r.endpoint_id for r in requests]))
        grants, rest = admission.admit_unlocked(seen, requests, now)
        if not rest:
            return grants

        def run(conn: sqlite3.Connection) -> dict[str, ThrottleGrant]:
            gates = _load_gates(conn, [r.endpoint_id for r in rest])
            changed = []
            for request in rest:
                before = gates.get(request.endpoint_id)
                gate, grants[request.endpoint_id] = admission.admit(
                    before or Gate(updated_at=now), request, now
                )
                if gate != before and gate != Gate(updated_at=now):
                    changed.append(codec.gate_to_params(request.endpoint_id, gate))
            if changed:
                conn.executemany(Q["save_gate"], changed)
            return grants

        return await self._write(run, durable=False)

    async def back_off(self, *, until: Mapping[str, float], now: float) -> None:
        if until:
            params = {"now": now, "until": codec.dumps([[e, t] for e, t in until.items()])}
            await self._write(lambda c: c.execute(Q["back_off"], params).rowcount, durable=False)

    async def divert(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        if not delivery_ids:
            return 0
        params = {"worker_id": worker_id, "ids": codec.dumps(list(delivery_ids)), "now": now}
        return await self._write(
            lambda c: c.execute(Q["divert_leases"], params).rowcount, durable=False
        )

    async def endpoint_gates(self, endpoint_ids: Collection[str]) -> dict[str, Gate]:
        ids = list(endpoint_ids)
        return await self._read(lambda c: _load_gates(c, ids))

    async def tripped_breakers(self, *, limit: int) -> dict[str, Gate]:
        rows = await self._read(
            lambda c: c.execute(Q["tripped_breakers"], {"limit": limit}).fetchall()
        )
        return {r["endpoint_id"]: codec.gate_from_row(r) for r in rows}

    async def recover(self, *, now: float) -> int:
        if not self._exclusive:
            return 0  # another process may hold these leases: let them expire instead
        return await self._write(
            lambda c: c.execute(Q["recover_all_leases"], {"now": now}).rowcount, durable=False
        )

    async def next_due_at(self) -> float | None:
        row = await self._read(lambda c: c.execute(Q["next_due_at"]).fetchone())
        return None if row is None else row[0]

    # deliveries, attempts, dead letters --------------------------------------------------------
    async def list_deliveries(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        params = {
            "tenant_id": tenant_id,
            "cursor": cursor,
            "limit": limit + 1,
            **codec.filter_params(filter),
        }
        rows = await self._read(lambda c: c.execute(Q["list_deliveries"], params).fetchall())
        return _page([codec.delivery_from_row(r) for r in rows], limit)

    async def get_delivery(self, tenant_id: str | None, delivery_id: str) -> Delivery | None:
        params = {"id": delivery_id, "tenant_id": tenant_id}
        row = await self._read(lambda c: c.execute(Q["get_delivery"], params).fetchone())
        return None if row is None else codec.delivery_from_row(row)

    async def list_attempts(self, tenant_id: str | None, delivery_id: str) -> list[Attempt]:
        params = {"delivery_id": delivery_id, "tenant_id": tenant_id}
        rows = await self._read(lambda c: c.execute(Q["list_attempts"], params).fetchall())
        return [codec.attempt_from_row(r) for r in rows]

    async def requeue(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        delivery_ids: Sequence[str] | None = None,
        now: float,
        limit: int | None = None,
    ) -> int:
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "ids": None if delivery_ids is None else codec.dumps(list(delivery_ids)),
            "now": now,
            "limit": -1 if limit is None else limit,
            **codec.filter_params(filter),
        }
        return await self._write(lambda c: c.execute(Q["requeue"], params).rowcount)

    async def purge(self, tenant_id: str | None, filter: DeliveryFilter) -> int:
        params = {"tenant_id": tenant_id, **codec.filter_params(filter)}
        return await self._write(lambda c: c.execute(Q["purge"], params).rowcount)

    # stats and metrics -------------------------------------------------------------------------
    async def count_deliveries(
        self, tenant_id: str | None, *, since: float, endpoint_id: str | None = None
    ) -> list[DeliveryCount]:
        query = Q["count_deliveries" if endpoint_id is None else "count_endpoint_deliveries"]
        params = {"tenant_id": tenant_id, "since": since, "endpoint_id": endpoint_id}
        rows = await self._read(lambda c: c.execute(query, params).fetchall())
        return [DeliveryCount(r[0], r[1], DeliveryStatus(r[2]), r[3]) for r in rows]

    async def sample_attempts(
        self,
        tenant_id: str | None,
        *,
        since: float,
        endpoint_id: str | None = None,
        limit: int,
    ) -> AttemptSample:
        prefix = "" if endpoint_id is None else "endpoint_"
        params = {"tenant_id": tenant_id, "since": since, "endpoint_id": endpoint_id}

        def run(conn: sqlite3.Connection) -> AttemptSample:
            count, total = conn.execute(Q[prefix + "attempt_totals"], params).fetchone()
            sample = conn.execute(Q[prefix + "attempt_sample"], {**params, "limit": limit})
            return AttemptSample(count, total, [row[0] for row in sample])

        return await self._read(run)

    async def queue_counts(self, *, now: float) -> QueueCounts:
        row = await self._read(lambda c: c.execute(Q["queue_counts"], {"now": now}).fetchone())
        return QueueCounts(due=row[0], pending=row[1], sending=row[2], parked=row[3])


def _health(results: Sequence[AttemptResult]) -> tuple[list[str], dict[str, float | None]]:
    """Endpoints with a success in `results`, and the others with a failure (with the
    `disable_after` their results carry)."""
    succeeded = {r.attempt.endpoint_id for r in results if r.attempt.outcome == "success"}
    failed = {
        r.attempt.endpoint_id: r.disable_after
        for r in results
        if r.attempt.outcome != "success" and r.attempt.endpoint_id not in succeeded
    }
    return sorted(succeeded), failed


_EVENT_COLUMNS = 8
_DELIVERY_COLUMNS = 10
#: `insert_event` with positional parameters (its columns' order) for `_insert_values`.
_INSERT_EVENT = (
    Q["insert_event"][: Q["insert_event"].rindex("VALUES")]
    + "VALUES ("
    + (", ".join("?" * _EVENT_COLUMNS) + ")")
)
#: Rows per multi-row INSERT, largest first: any count is a sum of these, and only these few
#: statements are ever prepared (the connection's statement cache keeps them). A full batch
#: (1,000 events) is one statement per table; 1,000 rows of the widest insert (attempts, 12
#: columns) stay well within SQLite's 32,766 parameters.
_INSERT_CHUNKS = (1000, 256, 64, 16, 4, 1)


def _delivery_values(fanned: Sequence[tuple[Event, list[_Target]]]) -> list[Any]:
    """The `insert_delivery` values (row after row) of events and their fan-out targets, in that
    order. The ids of a batch's deliveries (which share their creation time) increase in that
    order (`ids.new_ids_at`): the rows go in at the end of each index on their id, and a FIFO
    endpoint, which takes them by (creation time, id), gets them in the batch's order."""
    made = iter(
        ids.new_ids_at(
            ids.DELIVERY, [event.created_at for event, targets in fanned for _ in targets]
        )
    )
    values: list[Any] = []
    for event, targets in fanned:
        now = event.created_at
        for endpoint_id, _, active, default_priority, in_order in targets:
            values += (
                next(made),
                event.tenant_id,
                event.id,
                endpoint_id,
                event.type,
                first_status(in_order, active).value,
                default_priority if event.priority is None else event.priority,
                now,
                now,
                now,
            )
    return values


def types_stamp_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + TYPES_STAMP_SUFFIX)


class SharedStamp:
    """8 bytes of a file mapped into every process that opens it: `touch` writes new random
    bytes, `read` (a memory read, no system call) tells whether anyone touched it since."""

    SIZE = 8

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[: self.SIZE]

    def touch(self) -> None:
        self._map[: self.SIZE] = os.urandom(self.SIZE)

    def close(self) -> None:
        self._map.close()


def _endpoints_version(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(Q["get_meta"], {"key": _ENDPOINTS_VERSION}).fetchone()
    return None if row is None else str(row[0])


def _bodies(conn: sqlite3.Connection, event_ids: str) -> dict[str, bytes]:
    """The wire body of each event of `event_ids` (a JSON array), by its id."""
    params = {"ids": event_ids}
    heads, payloads = conn.execute(Q["events_for_bodies"], params).fetchone()
    events = orjson.loads(heads)
    parts = payloads.split(b"\x1f") if events else []
    if len(parts) != len(events):  # a payload holding 0x1F: not JSON hookd wrote, but whole
        rows = conn.execute(Q["events_for_bodies_rows"], params).fetchall()
        return {r[0]: codec.wire_body(r[1], r[2], bytes(r[3])) for r in rows}
    wire = codec.wire_body
    return {e[0]: wire(e[1], e[2], part) for e, part in zip(events, parts, strict=True)}


def _insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """`insert` (an INSERT of one `VALUES (?, …)` row) for each of `rows` (`_insert_values`)."""
    if rows:
        _insert_values(conn, insert, [value for row in rows for value in row], len(rows[0]))


def _insert_values(conn: sqlite3.Connection, insert: str, values: list[Any], columns: int) -> None:
    """`insert` (an INSERT of one `VALUES (?, …)` row of `columns` values) for the rows of
    `values` (row after row), as multi-row INSERTs.

    `executemany` steps the statement once per row, and the sqlite3 module lets go of the GIL
    around every step: on the writer thread each one is a wait for the event loop's thread to
    hand it back, which under load is most of the time the insert takes. One statement per chunk
    of rows steps once.
    """
    rows = len(values) // columns
    at = 0
    for size in _INSERT_CHUNKS:
        while rows - at >= size:
            chunk = values if size == rows else values[at * columns : (at + size) * columns]
            conn.execute(_multi_row(insert, size), chunk)
            at += size


@functools.cache
def _multi_row(insert: str, rows: int) -> str:
    """`insert` with its `VALUES (?, …)` row repeated `rows` times (what follows it kept)."""
    head, _, values = insert.rpartition("VALUES")
    end = values.index(")") + 1
    return head + "VALUES " + ", ".join([values[:end].strip()] * rows) + values[end:]


def _outcomes(job: asyncio.Future[list[_Outcome]]) -> list[_Outcome] | BaseException:
    if job.cancelled():
        return asyncio.CancelledError()
    return job.exception() or job.result()


def _answer_publishes(taken: list[_Publish], outcomes: list[_Outcome] | BaseException) -> None:
    """On the event loop, once the writer has committed (or failed): answer each publish."""
    if isinstance(outcomes, BaseException):
        outcomes = [(None, outcomes)] * len(taken)
    current = asyncio.get_running_loop()
    for (_, _, waiter), (results, error) in zip(taken, outcomes, strict=True):
        if waiter.get_loop() is current:
            _settle_one(waiter, results, error)
        else:  # a caller on another event loop (another thread)
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                waiter.get_loop().call_soon_threadsafe(_settle_one, waiter, results, error)


def _settle_one(
    waiter: asyncio.Future[list[PublishResult]],
    results: list[PublishResult] | None,
    error: BaseException | None,
) -> None:
    if waiter.done():  # the caller was cancelled
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        assert results is not None
        waiter.set_result(results)


def _page(items: list[T], limit: int) -> Page[T]:
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        return Page(items, getattr(last, "id", None))
    return Page(items, None)


def _load_gates(conn: sqlite3.Connection, endpoint_ids: Sequence[str]) -> dict[str, Gate]:
    rows = conn.execute(Q["gates_for"], {"ids": codec.dumps(endpoint_ids)})
    return {r["endpoint_id"]: codec.gate_from_row(r) for r in rows}


def _settle_breakers(
    conn: sqlite3.Connection, outcomes: Mapping[str, list[admission.BreakerOutcome]], now: float
) -> list[BreakerChange]:
    """Apply attempt outcomes to their endpoints' breakers (inside the record transaction)."""
    if not outcomes:
        return []
    gates = _load_gates(conn, list(outcomes))
    changes: list[BreakerChange] = []
    rows = []
    for endpoint_id, results in outcomes.items():
        before = gates.get(endpoint_id, Gate(updated_at=now))
        gate, changed = admission.settle(before, results, now)
        rows.append(codec.gate_to_params(endpoint_id, gate))
        changes.extend(changed)
        if admission.probe_closed(changed):
            params = {"endpoint_id": endpoint_id, "now": now, "until": before.breaker.until}
            conn.execute(Q["breaker_closed"], params)
    conn.executemany(Q["save_gate"], rows)
    return changes
