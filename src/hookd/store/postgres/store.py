"""`PostgresStore`: the storage port on PostgreSQL, shared by many API and worker processes.

- A connection pool per process (asyncpg). Every statement's driver error becomes a
  `StoreError`, or `StoreUnavailable` when the server cannot be reached, with the driver's
  exception as `__cause__`. The pool reconnects by itself when the server comes back; the
  callers (the worker loops) back off meanwhile, and `ping` fails, so `/readyz` answers 503.
- Claims are one statement (`FOR UPDATE SKIP LOCKED`, a lease in `next_attempt_at`), walking the
  partial index `deliveries_due`: their cost follows the batch, not the backlog.
- Publishes from concurrent callers share one transaction (group commit, batcher.py); attempts
  are recorded in one transaction per batch. No hot-path write is one row per transaction.
- NOTIFY after commit wakes idle workers (`subscribe_wakeups`) and drops changed endpoints from
  every process's cache; the cache also expires entries after `ENDPOINT_CACHE_TTL` seconds, in
  case a notification was missed. Polling stays the guarantee.
- Nothing is owned by one process: `recover` frees nothing (a dead worker's leases expire).
- Migrations run under an advisory lock, so processes starting together don't race.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg
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
from hookd.store.postgres.batcher import GroupCommit
from hookd.store.sql import load_migrations, load_queries

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from hookd.config import Settings

    #: A connection, whether checked out of the pool or made alone.
    _Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

T = TypeVar("T")

log = logging.getLogger("hookd.store.postgres")

_KEY_CHECK = "secret_key_check"
#: Seconds an endpoint stays in a worker's cache when no change notification comes.
ENDPOINT_CACHE_TTL = 5.0
#: Seconds `ping` and a pool checkout wait before the database counts as unavailable.
PING_TIMEOUT = 2.0
ACQUIRE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

#: Errors that mean "the server cannot be reached now", as opposed to "the statement failed".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # a connection lost mid-operation can leave asyncpg's protocol confused (e.g. "cannot switch
    # to state 15" when the pool resets it): the pool drops that connection
    asyncpg.exceptions.InternalClientError,
)


@dataclass(frozen=True, slots=True)
class _Query:
    """A named query with `:name` parameters, as asyncpg's positional `$n` SQL."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> _Query:
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        return cls(_PARAM.sub(number, body), tuple(names))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


Q = {
    name: _Query.parse(sql)
    for name, sql in load_queries("hookd.store.postgres", "queries.sql").items()
}


@dataclass(frozen=True, slots=True)
class _PublishRequest:
    events: Sequence[Event]
    idempotent_since: float | None


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Driver errors as hookd's: `StoreUnavailable` (can't reach the server) or `StoreError`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise errors.StoreUnavailable(
            f"PostgreSQL is unavailable ({action}): {type(exc).__name__}: {exc}"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise errors.StoreError(f"PostgreSQL {action} failed: {exc}") from exc


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_schema_name(name: str) -> str:
    if not _SCHEMA_NAME.fullmatch(name):
        raise errors.ConfigError(
            f"database schema {name!r}: use letters, digits and _ (at most 63, not first a digit)"
        )
    return name


def _pg_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a receiver's response may (kept visible as U+FFFD)."""
    return value.replace("\0", "\ufffd") if value is not None and "\0" in value else value


class PostgresStore:
    def __init__(
        self,
        url: str,
        box: SecretBox,
        *,
        schema: str | None = None,
        pool_min: int = 1,
        pool_max: int = 10,
        endpoint_cache_ttl: float = ENDPOINT_CACHE_TTL,
    ) -> None:
        self.url = url
        self.schema = None if schema is None else check_schema_name(schema)
        self._box = box
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._cache_ttl = endpoint_cache_ttl
        self._pool: asyncpg.Pool | None = None
        self._publisher: GroupCommit[_PublishRequest, list[PublishResult]] = GroupCommit(
            self._publish_batch, size=lambda r: len(r.events), name="hookd-pg-publish"
        )
        # the worker's endpoint cache: id -> (endpoint, when it expires on the monotonic clock)
        self._endpoints: dict[str, tuple[Endpoint, float]] = {}
        self._endpoints_generation = 0
        self._patterns: dict[str, PatternSet] = {}
        self._wakeup_callbacks: list[Callable[[], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        suffix = self.schema or "public"
        self.wakeup_channel = f"hookd_wakeup.{suffix}"
        self.endpoint_channel = f"hookd_endpoints.{suffix}"

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresStore:
        """The store `hookd.config.Settings` describe (`database_url` must be set)."""
        if settings.database_url is None:
            raise errors.ConfigError("HOOKD_DATABASE_URL is not set")
        return cls(
            settings.database_url,
            settings.load_secret_box(),
            schema=settings.database_schema,
            pool_min=settings.database_pool_min,
            pool_max=settings.database_pool_size,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r}, schema={self.schema!r})"

    # lifecycle ---------------------------------------------------------------------------------
    def _server_settings(self, role: str = "hookd") -> dict[str, str]:
        """Session settings; `application_name` tells hookd's connections apart in
        pg_stat_activity (`hookd`, `hookd-listen`, with `/schema` when one is set)."""
        settings = {"application_name": role}
        if self.schema is not None:
            settings["application_name"] = f"{role}/{self.schema}"
            settings["search_path"] = quote_ident(self.schema)
        return settings

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.url, server_settings=self._server_settings("hookd-listen"), timeout=CONNECT_TIMEOUT
        )

    async def open(self) -> None:
        if self._pool is not None:
            return
        with _translated(f"connecting to {redact_url(self.url)}"):
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self._pool_min,
                max_size=self._pool_max,
                server_settings=self._server_settings(),
                timeout=CONNECT_TIMEOUT,
            )
        try:
            with _translated("migrating"):
                async with pool.acquire() as conn:
                    await migrate(conn, self.schema)
                    await self._check_key(conn)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool
        self._publisher.start()
        self._listener = asyncio.create_task(self._listen(), name="hookd-pg-listen")
        # notifications are a hint: don't wait for the listener, but give it a moment
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), CONNECT_TIMEOUT)

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            await self._publisher.stop()  # writes what callers submitted before the close
        finally:
            pool, self._pool = self._pool, None
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._listener
                self._listener = None
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()

    async def ping(self) -> None:
        pool = self._require_pool()
        with _translated("ping"):
            async with pool.acquire(timeout=PING_TIMEOUT) as conn:
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT)

    async def schema_version(self) -> int:
        async with self._connection("reading the schema version") as conn:
            return int(await conn.fetchval("SELECT max(version) FROM schema_migrations") or 0)

    async def _check_key(self, conn: _Conn) -> None:
        await self._run(
            conn, "put_meta_if_absent", {"key": _KEY_CHECK, "value": self._box.check_value()}
        )
        stored = await conn.fetchval(Q["get_meta"].sql, _KEY_CHECK)
        self._box.verify_check_value(stored)

    # plumbing ----------------------------------------------------------------------------------
    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise errors.StoreUnavailable("the PostgreSQL store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self, action: str) -> AsyncIterator[_Conn]:
        pool = self._require_pool()
        with _translated(action):
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[_Conn]:
        async with self._connection(action) as conn, conn.transaction():
            yield conn

    async def _fetch(self, name: str, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        query = Q[name]
        async with self._connection(name) as conn:
            return await conn.fetch(query.sql, *query.args(params))

    async def _fetchrow(self, name: str, params: Mapping[str, Any]) -> asyncpg.Record | None:
        query = Q[name]
        async with self._connection(name) as conn:
            return await conn.fetchrow(query.sql, *query.args(params))

    async def _execute(self, name: str, params: Mapping[str, Any]) -> int:
        query = Q[name]
        async with self._connection(name) as conn:
            return _rowcount(await conn.execute(query.sql, *query.args(params)))

    @staticmethod
    async def _run(conn: _Conn, name: str, params: Mapping[str, Any]) -> int:
        query = Q[name]
        return _rowcount(await conn.execute(query.sql, *query.args(params)))

    async def _notify(self, conn: _Conn, channel: str, payload: str = "") -> None:
        """Queue a notification; PostgreSQL sends it when (and only if) the transaction commits."""
        await conn.execute(Q["notify"].sql, channel, payload)

    # notifications -----------------------------------------------------------------------------
    def subscribe_wakeups(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop) whenever work may have become due in any process.

        Returns a function that unsubscribes. A hint only: a worker keeps polling as well.
        """
        self._wakeup_callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._wakeup_callbacks.remove(callback)

        return unsubscribe

    def _wake_up(self) -> None:
        for callback in list(self._wakeup_callbacks):
            try:
                callback()
            except Exception:
                log.exception("a wake-up callback failed")

    def _on_wakeup(self, *_: object) -> None:
        self._wake_up()

    def _on_endpoint_change(
        self, _conn: object, _pid: int, _channel: str, endpoint_id: object
    ) -> None:
        self._forget_endpoint(str(endpoint_id))

    async def _listen(self) -> None:
        """Keep one connection LISTENing; reconnect with backoff when it is lost."""
        delay = 0.1
        lost_before = False
        while True:
            try:
                conn = await self._connect()
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(functools.partial(_set_event, lost))
                await conn.add_listener(self.wakeup_channel, self._on_wakeup)
                await conn.add_listener(self.endpoint_channel, self._on_endpoint_change)
                delay = 0.1
                self._listening.set()
                if lost_before:
                    # notifications sent while we were away are lost: assume everything changed
                    log.info("LISTEN connection is back")
                    self._endpoints.clear()
                    self._endpoints_generation += 1
                    self._wake_up()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 10.0)
                    if not lost.is_set():  # a quiet connection may be a dead one: probe it
                        await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost: %s", exc)
            finally:
                self._listening.clear()
                conn.terminate()
            lost_before = True
            await asyncio.sleep(delay)

    # API keys ----------------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey) -> None:
        await self._execute(
            "insert_api_key",
            {
                "id": key.id,
                "tenant_id": key.tenant_id,
                "name": key.name,
                "prefix": key.prefix,
                "key_hash": key.key_hash,
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
            },
        )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._fetchrow("find_api_key", {"key_hash": key_hash})
        return None if row is None else ApiKey(**dict(row))

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKey]:
        rows = await self._fetch("list_api_keys", {"tenant_id": tenant_id})
        return [ApiKey(**dict(row)) for row in rows]

    async def get_api_key(self, tenant_id: str | None, key_id: str) -> ApiKey | None:
        row = await self._fetchrow("get_api_key", {"id": key_id, "tenant_id": tenant_id})
        return None if row is None else ApiKey(**dict(row))

    async def revoke_api_key(
        self, tenant_id: str | None, key_id: str, *, now: float
    ) -> ApiKey | None:
        row = await self._fetchrow(
            "revoke_api_key", {"id": key_id, "tenant_id": tenant_id, "now": now}
        )
        return None if row is None else ApiKey(**dict(row))

    # event types -------------------------------------------------------------------------------
    @staticmethod
    def _event_type_row(event_type: EventType) -> dict[str, Any]:
        row = codec.event_type_to_row(event_type)
        row["archived"] = bool(row["archived"])
        return row

    async def create_event_type(self, event_type: EventType) -> None:
        if not await self._execute("insert_event_type", self._event_type_row(event_type)):
            raise errors.Conflict(f"event type {event_type.name!r} already exists")

    async def update_event_type(self, event_type: EventType) -> None:
        if not await self._execute("update_event_type", self._event_type_row(event_type)):
            raise errors.NotFound("event type", event_type.name)

    async def get_event_type(self, tenant_id: str, name: str) -> EventType | None:
        row = await self._fetchrow("get_event_type", {"tenant_id": tenant_id, "name": name})
        return None if row is None else codec.event_type_from_row(_row(row))

    async def event_types_by_name(
        self, tenant_id: str, names: Collection[str]
    ) -> dict[str, EventType]:
        rows = await self._fetch(
            "event_types_by_name", {"tenant_id": tenant_id, "names": list(names)}
        )
        return {r["name"]: codec.event_type_from_row(_row(r)) for r in rows}

    async def list_event_types(
        self,
        tenant_id: str | None,
        *,
        include_archived: bool,
        limit: int,
        cursor: str | None = None,
    ) -> Page[EventType]:
        rows = await self._fetch(
            "list_event_types",
            {
                "tenant_id": tenant_id,
                "include_archived": include_archived,
                "cursor": cursor,
                "limit": limit + 1,
            },
        )
        return _page([codec.event_type_from_row(_row(r)) for r in rows], limit)

    # endpoints ---------------------------------------------------------------------------------
    def _forget_endpoint(self, endpoint_id: str) -> None:
        self._endpoints.pop(endpoint_id, None)
        self._endpoints_generation += 1

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        await self._execute("insert_endpoint", codec.endpoint_to_row(endpoint, self._box))

    async def update_endpoint(
        self, endpoint: Endpoint, *, expected_updated_at: float | None = None
    ) -> None:
        row = codec.endpoint_to_row(endpoint, self._box)
        async with self._transaction("update_endpoint") as conn:
            query = Q["lock_endpoint_status"]
            found = await conn.fetchrow(
                query.sql, *query.args({"id": endpoint.id, "tenant_id": endpoint.tenant_id})
            )
            if found is None:
                raise errors.NotFound("endpoint", endpoint.id)
            before, updated_at = found
            if expected_updated_at is not None and updated_at != expected_updated_at:
                raise errors.Conflict(ENDPOINT_CHANGED)
            await self._run(conn, "update_endpoint", row)
            await self._apply_status_change(
                conn, endpoint.id, before, endpoint.status.value, endpoint.updated_at
            )
            if endpoint.ordering is not EndpointOrdering.FIFO:  # nothing waits in a queue
                await self._run(
                    conn, "release_queued", {"endpoint_id": endpoint.id, "now": endpoint.updated_at}
                )
            else:  # e.g. resumed after its head was purged: the next one goes
                await self._promote_fifo_heads(conn, [endpoint.id], endpoint.updated_at)
            await self._notify(conn, self.endpoint_channel, endpoint.id)
        self._forget_endpoint(endpoint.id)

    async def _apply_status_change(
        self, conn: _Conn, endpoint_id: str, before: str, after: str, now: float
    ) -> None:
        active = EndpointStatus.ACTIVE.value
        params = {"endpoint_id": endpoint_id, "now": now}
        if before == active and after != active:
            await self._run(conn, "park_endpoint_deliveries", params)
        elif (
            before != active
            and after == active
            and await self._run(conn, "resume_endpoint_deliveries", params)
        ):
            await self._notify(conn, self.wakeup_channel)

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint | None:
        row = await self._fetchrow("get_endpoint", {"id": endpoint_id, "tenant_id": tenant_id})
        return None if row is None else codec.endpoint_from_row(_row(row), self._box)

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]:
        rows = await self._fetch(
            "list_endpoints", {"tenant_id": tenant_id, "cursor": cursor, "limit": limit + 1}
        )
        return _page([codec.endpoint_from_row(_row(r), self._box) for r in rows], limit)

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> bool:
        async with self._transaction("delete_endpoint") as conn:
            query = Q["delete_endpoint"]
            owner = await conn.fetchval(
                query.sql, *query.args({"id": endpoint_id, "tenant_id": tenant_id})
            )
            if owner is not None:
                await self._notify(conn, self.endpoint_channel, endpoint_id)
        self._forget_endpoint(endpoint_id)
        return owner is not None

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        now = time.monotonic()
        found: dict[str, Endpoint] = {}
        missing: list[str] = []
        for endpoint_id in endpoint_ids:
            cached = self._endpoints.get(endpoint_id)
            if cached is not None and cached[1] > now:
                found[endpoint_id] = cached[0]
            else:
                missing.append(endpoint_id)
        if missing:
            generation = self._endpoints_generation
            rows = await self._fetch("endpoints_by_ids", {"ids": missing})
            loaded = {r["id"]: codec.endpoint_from_row(_row(r), self._box) for r in rows}
            if generation == self._endpoints_generation:  # no change was announced meanwhile
                expires = now + self._cache_ttl
                self._endpoints.update((i, (e, expires)) for i, e in loaded.items())
            found.update(loaded)
        return found

    # events ------------------------------------------------------------------------------------
    async def publish(
        self, events: Sequence[Event], *, idempotent_since: float | None = None
    ) -> list[PublishResult]:
        if not events:
            return []
        return await self._publisher.submit(_PublishRequest(events, idempotent_since))

    async def _publish_batch(
        self, requests: list[_PublishRequest]
    ) -> list[list[PublishResult] | BaseException]:
        """Many callers' publishes in one transaction; a request that fails fails alone."""
        try:
            return list(await self._publish_together(requests))
        except errors.StoreUnavailable as exc:
            return [exc] * len(requests)
        except errors.StoreError as exc:
            if len(requests) == 1:
                return [exc]
        outcomes: list[list[PublishResult] | BaseException] = []
        for request in requests:  # one of them spoiled the batch: find it by going one by one
            try:
                outcomes.extend(await self._publish_together([request]))
            except errors.StoreError as exc:
                outcomes.append(exc)
        return outcomes

    def _patterns_of(self, event_types: str) -> PatternSet:
        patterns = self._patterns.get(event_types)
        if patterns is None:
            if len(self._patterns) > 10_000:
                self._patterns.clear()
            patterns = self._patterns[event_types] = PatternSet(orjson.loads(event_types))
        return patterns

    async def _publish_together(self, requests: list[_PublishRequest]) -> list[list[PublishResult]]:
        events = [event for request in requests for event in request.events]
        since = [request.idempotent_since for request in requests for _ in request.events]
        async with self._transaction("publish") as conn:
            results = await self._publish_events(conn, events, since)
        out: list[list[PublishResult]] = []
        start = 0
        for request in requests:
            out.append(results[start : start + len(request.events)])
            start += len(request.events)
        return out

    async def _publish_events(
        self, conn: _Conn, events: list[Event], since: list[float | None]
    ) -> list[PublishResult]:
        results: list[PublishResult | None] = [None] * len(events)
        windows: dict[tuple[str, str], float | None] = {}
        for event, window in zip(events, since, strict=True):
            if event.idempotency_key is not None:
                windows.setdefault((event.tenant_id, event.idempotency_key), window)
        stored: dict[tuple[str, str], tuple[Event, int]] = {}
        if windows:
            keys = sorted(windows)  # one lock order for every publisher
            await conn.execute(
                Q["lock_idempotency_keys"].sql, [t for t, _ in keys], [k for _, k in keys]
            )
            rows = await conn.fetch(
                Q["idempotent_events"].sql,
                [t for t, _ in keys],
                [k for _, k in keys],
                [windows[key] for key in keys],
            )
            stored = {
                (r["tenant_id"], r["idempotency_key"]): (
                    codec.event_from_row(_row(r)),
                    r["deliveries"],
                )
                for r in rows
            }
        first_in_batch: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []  # (index, index of the first event with its key)
        fresh: list[int] = []
        for i, event in enumerate(events):
            if event.idempotency_key is not None:
                key = (event.tenant_id, event.idempotency_key)
                if key in stored:
                    first, count = stored[key]
                    results[i] = PublishResult(first, count, True)
                    continue
                if key in first_in_batch:
                    repeats.append((i, first_in_batch[key]))
                    continue
                first_in_batch[key] = i
            fresh.append(i)
        if fresh:
            await conn.execute(
                Q["insert_events"].sql,
                [events[i].id for i in fresh],
                [events[i].tenant_id for i in fresh],
                [events[i].type for i in fresh],
                [events[i].payload for i in fresh],
                [events[i].occurred_at for i in fresh],
                [events[i].created_at for i in fresh],
                [events[i].idempotency_key for i in fresh],
                [events[i].priority for i in fresh],
            )
        due = await self._insert_deliveries(conn, events, fresh, results)
        for i, first_index in repeats:
            first_result = results[first_index]
            assert first_result is not None
            results[i] = PublishResult(first_result.event, first_result.deliveries, True)
        if due:
            await self._notify(conn, self.wakeup_channel)
        return [r for r in results if r is not None]

    async def _insert_deliveries(
        self,
        conn: _Conn,
        events: list[Event],
        created: list[int],
        results: list[PublishResult | None],
        *,
        exclude: str | None = None,
    ) -> bool:
        """One delivery per matching endpoint for each new event; whether any is due now."""
        if not created:
            return False
        tenants = sorted({events[i].tenant_id for i in created})
        targets: dict[str, list[tuple[str, PatternSet, bool, int, bool]]] = {t: [] for t in tenants}
        for row in await conn.fetch(Q["fanout_targets"].sql, tenants):
            targets[row["tenant_id"]].append(
                (
                    row["id"],
                    self._patterns_of(row["event_types"]),
                    row["status"] == "active",
                    row["default_priority"],
                    row["ordering"] == EndpointOrdering.FIFO.value,
                )
            )
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
        due = False
        fifo: set[str] = set()  # FIFO endpoints that got deliveries (queued)
        for i in created:
            event = events[i]
            count = 0
            for endpoint_id, patterns, active, default_priority, in_order in targets[
                event.tenant_id
            ]:
                if not patterns.matches(event.type) or endpoint_id == exclude:
                    continue
                count += 1
                due = due or active
                if in_order:
                    fifo.add(endpoint_id)
                for column, value in zip(
                    columns,
                    (
                        "",  # the id: drawn below, for all the rows at once
                        event.tenant_id,
                        event.id,
                        endpoint_id,
                        event.type,
                        first_status(in_order, active).value,
                        default_priority if event.priority is None else event.priority,
                        event.created_at,
                    ),
                    strict=True,
                ):
                    column.append(value)
            results[i] = PublishResult(event, count)
        if columns[0]:
            # a batch's deliveries share their creation time: ids in row order (ids.new_ids_at),
            # so that a FIFO endpoint, which takes them by (created_at, id), gets them in order
            columns[0][:] = ids.new_ids_at(ids.DELIVERY, columns[7])
            await conn.execute(Q["insert_deliveries"].sql, *columns)
        if fifo:  # a FIFO endpoint without a head: its oldest queued delivery is next
            await self._promote_fifo_heads(conn, fifo, time.time())
        return due

    async def _publish_disabled(self, conn: _Conn, event: Event, endpoint_id: str) -> None:
        """Publish the `endpoint.disabled` event in the caller's transaction, to every
        subscribed endpoint of the tenant but the disabled one."""
        await conn.execute(
            Q["insert_events"].sql,
            [event.id],
            [event.tenant_id],
            [event.type],
            [event.payload],
            [event.occurred_at],
            [event.created_at],
            [event.idempotency_key],
            [event.priority],
        )
        results: list[PublishResult | None] = [None]
        if await self._insert_deliveries(conn, [event], [0], results, exclude=endpoint_id):
            await self._notify(conn, self.wakeup_channel)

    @staticmethod
    async def _promote_fifo_heads(conn: _Conn, endpoint_ids: Collection[str], now: float) -> int:
        """Give each FIFO endpoint among `endpoint_ids` that has no head its next delivery, taking
        turns with other transactions (lock, then a statement that sees their commits)."""
        params = {"endpoint_ids": sorted(endpoint_ids), "now": now}
        await PostgresStore._run(conn, "lock_fifo_endpoints", params)
        return await PostgresStore._run(conn, "promote_fifo_heads", params)

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event | None:
        row = await self._fetchrow("get_event", {"id": event_id, "tenant_id": tenant_id})
        return None if row is None else codec.event_from_row(_row(row))

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
        rows = await self._fetch("list_events", params)
        return _page([codec.event_from_row(_row(r)) for r in rows], limit)

    # the worker's side -------------------------------------------------------------------------
    async def claim(
        self, *, worker_id: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        rows = await self._fetch(
            "claim_due",
            {
                "worker_id": worker_id,
                "lease_until": now + lease_seconds,
                "now": now,
                "limit": limit,
            },
        )
        claimed = [
            ClaimedDelivery(
                id=r["id"],
                endpoint_id=r["endpoint_id"],
                event_id=r["event_id"],
                event_type=r["event_type"],
                attempts=r["attempts"],
                total_attempts=r["total_attempts"],
                body=codec.wire_body(r["type"], r["occurred_at"], r["payload"]),
                priority=r["priority"],
                fallback=r["fallback"],
            )
            for r in rows
        ]
        claimed.sort(key=lambda c: -c.priority)  # RETURNING keeps no order
        return claimed

    async def record(
        self, *, worker_id: str, results: Sequence[AttemptResult], now: float
    ) -> list[BreakerChange]:
        if not results:
            return []
        attempts = [codec.attempt_to_params(r.attempt) for r in results]
        columns = [list(column) for column in zip(*attempts, strict=True)]
        columns[8] = [_pg_text(v) for v in columns[8]]  # error
        columns[11] = [_pg_text(v) for v in columns[11]]  # response body
        complete = Q["complete_deliveries"]  # (locks in key order whatever the arrays' order)
        completion = complete.args(
            {
                "ids": [r.attempt.delivery_id for r in results],
                "statuses": [r.status.value for r in results],
                "next_attempt_at": [r.next_attempt_at for r in results],
                "status_codes": [r.attempt.status_code for r in results],
                "errors": [_pg_text(r.attempt.error) for r in results],
                "to_fallback": [r.to_fallback for r in results],
                "now": now,
                "worker_id": worker_id,
            }
        )
        disables = {
            r.attempt.endpoint_id: r.disable_endpoint_reason
            for r in results
            if r.disable_endpoint_reason is not None
        }
        succeeded = sorted(
            {r.attempt.endpoint_id for r in results if r.attempt.outcome == "success"}
        )
        failed = {
            r.attempt.endpoint_id: r.disable_after
            for r in results
            if r.attempt.outcome != "success" and r.attempt.endpoint_id not in succeeded
        }
        # endpoints whose delivery ended: if FIFO, their next delivery may go
        ended = {r.attempt.endpoint_id for r in results if r.status in ENDED_STATUSES}
        outcomes = admission.breaker_outcomes(results)
        breaker_changes: list[BreakerChange] = []
        async with self._transaction("record") as conn:
            await conn.execute(Q["insert_attempts"].sql, *columns)
            # a plan by primary key and hash, whatever the statistics say (the query's comment)
            await conn.execute("SET LOCAL enable_nestloop = off")
            await conn.execute(complete.sql, *completion)
            await conn.execute("RESET enable_nestloop")
            health = Q["track_endpoint_health"]
            ids_failed = sorted(failed)
            for row in await conn.fetch(
                health.sql,
                *health.args(
                    {
                        "now": now,
                        "succeeded": succeeded,
                        "failed": ids_failed,
                        "disable_after": [failed[i] for i in ids_failed],
                    }
                ),
            ):
                disables.setdefault(row["id"], codec.failing_reason(row["after"]))
            if ended and await self._promote_fifo_heads(conn, ended, now):
                await self._notify(conn, self.wakeup_channel)  # a new head is due
            for endpoint_id, reason in disables.items():
                query = Q["disable_endpoint"]
                changed = await conn.fetchrow(
                    query.sql, *query.args({"id": endpoint_id, "reason": reason, "now": now})
                )
                if changed is not None:
                    await self._run(
                        conn, "park_endpoint_deliveries", {"endpoint_id": endpoint_id, "now": now}
                    )
                    await self._notify(conn, self.endpoint_channel, endpoint_id)
                    event = codec.disabled_event(
                        changed["tenant_id"], endpoint_id, changed["url"], reason, now
                    )
                    await self._publish_disabled(conn, event, endpoint_id)
            if outcomes:
                gates = await self._lock_gates(conn, list(outcomes), now)
                settled: dict[str, Gate] = {}
                for endpoint_id, endpoint_outcomes in outcomes.items():
                    before = gates[endpoint_id]
                    settled[endpoint_id], transitions = admission.settle(
                        before, endpoint_outcomes, now
                    )
                    breaker_changes.extend(transitions)
                    if admission.probe_closed(transitions):
                        params = {"endpoint_id": endpoint_id, "now": now}
                        await self._run(
                            conn, "breaker_closed", {**params, "until": before.breaker.until}
                        )
                        await self._notify(conn, self.wakeup_channel)
                await self._save_gates(conn, settled)
        for endpoint_id in disables:
            self._forget_endpoint(endpoint_id)
        return breaker_changes

    async def release(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        if not delivery_ids:
            return 0
        async with self._transaction("release") as conn:
            released = await self._run(
                conn,
                "release_leases",
                {"worker_id": worker_id, "ids": list(delivery_ids), "now": now},
            )
            if released:
                await self._notify(conn, self.wakeup_channel)
        return released

    async def release_worker(self, *, worker_id: str, now: float) -> int:
        async with self._transaction("release_worker") as conn:
            released = await self._run(
                conn, "release_worker_leases", {"worker_id": worker_id, "now": now}
            )
            if released:
                await self._notify(conn, self.wakeup_channel)
        return released

    async def defer(self, *, worker_id: str, until: Mapping[str, float], now: float) -> None:
        if not until:
            return
        query = Q["defer_lease"]
        rows = [
            query.args({"id": delivery_id, "until": due, "now": now, "worker_id": worker_id})
            for delivery_id, due in sorted(until.items())  # one lock order
        ]
        async with self._connection("defer") as conn:
            await conn.executemany(query.sql, rows)

    async def throttle(
        self, *, requests: Sequence[ThrottleRequest], now: float
    ) -> dict[str, ThrottleGrant]:
        if not requests:
            return {}
        # Unlocked first (admission.admit_unlocked); the others are decided on under their rows'
        # locks.
        ids = sorted({r.endpoint_id for r in requests})
        seen = {
            r["endpoint_id"]: codec.gate_from_row(_row(r))
            for r in await self._fetch("gates_for", {"ids": ids})
        }
        grants, locked = admission.admit_unlocked(seen, requests, now)
        if locked:
            async with self._transaction("throttle") as conn:
                gates = await self._lock_gates(conn, [r.endpoint_id for r in locked], now)
                changed: dict[str, Gate] = {}
                for request in locked:
                    gate = gates[request.endpoint_id]
                    after, grants[request.endpoint_id] = admission.admit(gate, request, now)
                    if after != gate:
                        changed[request.endpoint_id] = after
                await self._save_gates(conn, changed)
        return grants

    async def _lock_gates(
        self, conn: _Conn, endpoint_ids: Sequence[str], now: float
    ) -> dict[str, Gate]:
        ids = sorted(set(endpoint_ids))
        await self._run(conn, "ensure_gates", {"ids": ids, "now": now})
        query = Q["lock_gates"]
        rows = await conn.fetch(query.sql, *query.args({"ids": ids}))
        return {r["endpoint_id"]: codec.gate_from_row(_row(r)) for r in rows}

    async def _save_gates(self, conn: _Conn, gates: Mapping[str, Gate]) -> None:
        if not gates:
            return
        rows = [codec.gate_to_params(e, g) for e, g in sorted(gates.items())]
        columns = {
            "endpoint_ids": [r["endpoint_id"] for r in rows],
            **{
                k: [r[k] for r in rows]
                for k in ("tokens", "updated_at", "backoff_until", "breaker_state", "breaker")
            },
        }
        await self._run(conn, "save_gates", columns)

    async def back_off(self, *, until: Mapping[str, float], now: float) -> None:
        if until:
            await self._execute(
                "back_off",
                {"now": now, "endpoint_ids": list(until), "until": list(until.values())},
            )

    async def divert(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        if not delivery_ids:
            return 0
        async with self._transaction("divert") as conn:
            diverted = await self._run(
                conn,
                "divert_leases",
                {"worker_id": worker_id, "ids": list(delivery_ids), "now": now},
            )
            if diverted:
                await self._notify(conn, self.wakeup_channel)
        return diverted

    async def endpoint_gates(self, endpoint_ids: Collection[str]) -> dict[str, Gate]:
        rows = await self._fetch("gates_for", {"ids": sorted(set(endpoint_ids))})
        return {r["endpoint_id"]: codec.gate_from_row(_row(r)) for r in rows}

    async def tripped_breakers(self, *, limit: int) -> dict[str, Gate]:
        rows = await self._fetch("tripped_breakers", {"limit": limit})
        return {r["endpoint_id"]: codec.gate_from_row(_row(r)) for r in rows}

    async def recover(self, *, now: float) -> int:
        return 0  # other processes may hold these leases: they expire instead

    async def next_due_at(self) -> float | None:
        row = await self._fetchrow("next_due_at", {})
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
            **_filter_params(filter),
        }
        rows = await self._fetch("list_deliveries", params)
        return _page([codec.delivery_from_row(_row(r)) for r in rows], limit)

    async def get_delivery(self, tenant_id: str | None, delivery_id: str) -> Delivery | None:
        row = await self._fetchrow("get_delivery", {"id": delivery_id, "tenant_id": tenant_id})
        return None if row is None else codec.delivery_from_row(_row(row))

    async def list_attempts(self, tenant_id: str | None, delivery_id: str) -> list[Attempt]:
        rows = await self._fetch(
            "list_attempts", {"delivery_id": delivery_id, "tenant_id": tenant_id}
        )
        return [codec.attempt_from_row(_row(r)) for r in rows]

    async def requeue(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        delivery_ids: Sequence[str] | None = None,
        now: float,
        limit: int | None = None,
    ) -> int:
        params = {
            "tenant_id": tenant_id,
            "ids": None if delivery_ids is None else list(delivery_ids),
            "now": now,
            "limit": limit,
            **_filter_params(filter),
        }
        async with self._transaction("requeue") as conn:
            query = Q["requeue"]
            statuses = await conn.fetch(query.sql, *query.args(params))
            if any(r["status"] == DeliveryStatus.PENDING.value for r in statuses):
                await self._notify(conn, self.wakeup_channel)
        return len(statuses)

    async def purge(self, tenant_id: str | None, filter: DeliveryFilter) -> int:
        return await self._execute("purge", {"tenant_id": tenant_id, **_filter_params(filter)})

    # stats and metrics -------------------------------------------------------------------------
    async def count_deliveries(
        self, tenant_id: str | None, *, since: float, endpoint_id: str | None = None
    ) -> list[DeliveryCount]:
        rows = await self._fetch(
            "count_deliveries",
            {"tenant_id": tenant_id, "since": since, "endpoint_id": endpoint_id},
        )
        return [DeliveryCount(r[0], r[1], DeliveryStatus(r[2]), r[3]) for r in rows]

    async def sample_attempts(
        self,
        tenant_id: str | None,
        *,
        since: float,
        endpoint_id: str | None = None,
        limit: int,
    ) -> AttemptSample:
        params = {"tenant_id": tenant_id, "since": since, "endpoint_id": endpoint_id}
        async with self._connection("sample_attempts") as conn:
            totals = Q["attempt_totals"]
            count, total = await conn.fetchrow(totals.sql, *totals.args(params)) or (0, 0.0)
            sample = Q["attempt_sample"]
            rows = await conn.fetch(sample.sql, *sample.args({**params, "limit": limit}))
        return AttemptSample(count, float(total), [r[0] for r in rows])

    async def queue_counts(self, *, now: float) -> QueueCounts:
        row = await self._fetchrow("queue_counts", {"now": now})
        assert row is not None
        return QueueCounts(due=row[0], pending=row[1], sending=row[2], parked=row[3])


async def migrate(conn: _Conn, schema: str | None) -> int:
    """Apply pending migrations in one transaction, under an advisory lock; the schema version.

    The lock is per schema: processes that start together wait for the first one's migration
    instead of racing it, then find nothing left to do.
    """
    async with conn.transaction():
        if schema is not None:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"hookd:{schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        else:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('hookd:' || current_schema()))"
            )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at double precision NOT NULL)"
        )
        applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        version = max(applied, default=0)
        for number, name, script in load_migrations("hookd.store.postgres.migrations"):
            if number in applied:
                continue
            await conn.execute(script)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                number,
                name,
                time.time(),
            )
            log.info("applied migration %04d_%s", number, name)
            version = number
    return version


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***, safe to print."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _set_event(event: asyncio.Event, *_: object) -> None:
    event.set()


def _row(record: asyncpg.Record) -> Mapping[str, Any]:
    """A record as the codec reads rows (by column name; asyncpg's records do that)."""
    return cast(Mapping[str, Any], record)


def _rowcount(status: str) -> int:
    """The row count of a command tag such as `UPDATE 3` or `INSERT 0 5`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _filter_params(f: DeliveryFilter) -> dict[str, Any]:
    params = codec.filter_params(f)
    params["statuses"] = [str(s) for s in f.statuses] if f.statuses else None
    return params


def _page(items: list[T], limit: int) -> Page[T]:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, getattr(items[-1], "id", None))
    return Page(items, None)
