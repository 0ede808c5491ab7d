"""The storage port: everything the core asks of a database, and nothing else.

Adapters: `hookd.store.sqlite.SqliteStore` (embedded default) and `hookd.store.memory.MemoryStore`
(an in-memory fake for unit tests, shipped with the package). Every method that reads or writes
tenant data takes `tenant_id`; `None` means "all tenants" (admin credentials only).

Semantics every adapter must honour (the contract tests in tests/integration/test_store_contract.py
hold each adapter to them):

- `publish` stores each event and one delivery per matching endpoint in one transaction, and an
  idempotency key seen before for the tenant returns the first event with `duplicate=True`.
  Deliveries for endpoints that are not active are created `parked`. A delivery's priority is
  its event's, else its endpoint's `default_priority`. Deliveries to a FIFO endpoint are created
  `queued`; an endpoint with no head (no pending, sending or parked delivery) gets its oldest
  queued one (by created_at, id) as head, pending (parked when not active). Never two heads,
  across processes too.
- `claim` takes up to `limit` due deliveries (`pending` with `next_attempt_at <= now`, or `sending`
  whose lease has expired), highest priority first, then oldest due first (the list it returns is
  in priority order), marks them `sending` under a lease owned by `worker_id` until
  `now + lease_seconds`. Deliveries not yet due are never read, whatever their priority.
- `record` stores attempts and applies each result only while the worker still holds the lease;
  a retry for an endpoint that is no longer active is parked instead; a result carrying
  `disable_endpoint_reason` disables the endpoint and parks its pending deliveries. Per batch it
  sets `last_success_at` (a success) or `failing_since` (a failure, unless set) on each endpoint,
  and disables an endpoint failing for longer than the `disable_after` its results carry. Every
  endpoint it disables gets an `endpoint.disabled` event published in the same transaction, with
  no delivery to that endpoint. A delivery that ended (delivered, failed, dead) makes its FIFO
  endpoint's next head. `to_fallback` makes the delivery pending with a fresh attempt budget and
  `fallback` set; `requeue` clears it.
- Pausing or disabling an endpoint (`update_endpoint`) parks its pending deliveries; making it
  active again resumes them.
- Idempotency keys have a retention window: `publish(..., idempotent_since=T)` matches a key
  only against the tenant's events with `created_at >= T` (the newest such event wins); an older
  event with the same key is ignored and a new event is stored with that key. Two concurrent
  publishes with the same (tenant, key) must still store one event (SQLite: its one writer;
  PostgreSQL: e.g. a transaction-scoped advisory lock on the key).
- Endpoints round-trip every field, including `filter` (a JSON object, stored as given, not
  evaluated) and `rate_limit`.
- `throttle` is the per-endpoint rate limit and back-off every worker process shares: for each
  request, in one atomic step per endpoint (one statement for the whole batch), it refills the
  endpoint's token bucket (hookd.policy.ratelimit.refill, at the request's rate and burst; a new
  bucket starts full) and takes up to `wanted` whole tokens; an endpoint without a rate limit is
  granted all it wants. While the endpoint backs off (`back_off` set a time after `now`) nothing
  is granted and no token is taken. `back_off` never shortens a back-off already set.
- `defer` gives back leases without an attempt (nothing is counted), each delivery due again at
  its own time; like `release`, a delivery whose endpoint is no longer active is parked.
- Event types are unique per (tenant, name); `create_event_type` raises `Conflict` on a repeat.
- Lists are pages, newest first (id descending); `cursor` is the last id of the previous page.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from hookd.domain.models import (
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Event,
    EventType,
    PublishResult,
)
from hookd.policy.admission import BreakerChange as BreakerChange
from hookd.policy.admission import Gate as Gate
from hookd.policy.admission import ThrottleGrant as ThrottleGrant
from hookd.policy.admission import ThrottleRequest as ThrottleRequest


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    prefix: str  # the first characters of the key, safe to show
    key_hash: str  # hex SHA-256 of the whole key
    tenant_id: str | None  # None: an admin key (every tenant)
    name: str | None
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    statuses: Sequence[DeliveryStatus] = ()
    endpoint_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    updated_before: float | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events `list_events` returns; every field given must match."""

    type: str | None = None  # exact event type
    created_after: float | None = None  # created_at >= this
    created_before: float | None = None  # created_at < this


@dataclass(frozen=True, slots=True)
class DeliveryCount:
    """How many deliveries of one endpoint and one event type are in one status (stats)."""

    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    count: int


@dataclass(frozen=True, slots=True)
class AttemptSample:
    """Attempts started in a time window (stats): all of them counted, the latest sampled."""

    count: int  # attempts started in the window
    total_ms: float  # the sum of their durations (0.0 when none)
    durations_ms: list[float]  # durations of the latest `limit` of them, in any order


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Deliveries waiting, over every tenant (metrics)."""

    due: int  # what `claim` would take now: pending and due, or sending with an expired lease
    pending: int  # every pending delivery, due now or scheduled for a retry
    sending: int  # claimed, under a lease (expired leases included)
    parked: int  # waiting for their endpoint to be active again


T = TypeVar("T")

#: The `Conflict` of an `update_endpoint` whose `expected_updated_at` no longer holds.
ENDPOINT_CHANGED = "the endpoint was changed by another request meanwhile"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class Store(Protocol):
    # lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, apply migrations, and check the secret key matches the stored data."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers."""

    # API keys --------------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None: ...

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKey]:
        """Every key (revoked ones too), ordered by id. `tenant_id` None: every key, admin keys
        included; a tenant id: that tenant's keys only (never admin keys)."""

    async def get_api_key(self, tenant_id: str | None, key_id: str) -> ApiKey | None:
        """The key with this id if `tenant_id` may see it (None sees every key), else None."""

    async def revoke_api_key(
        self, tenant_id: str | None, key_id: str, *, now: float
    ) -> ApiKey | None:
        """Set `revoked_at = now` unless the key is already revoked (then it keeps its first
        `revoked_at`). Returns the key as stored afterwards, or None when `tenant_id` cannot see
        a key with this id. From the commit on, `find_api_key` returns it with `revoked_at`
        set, so the next request with it is refused."""

    # endpoints -------------------------------------------------------------------------------
    async def create_endpoint(self, endpoint: Endpoint) -> None: ...

    async def update_endpoint(
        self, endpoint: Endpoint, *, expected_updated_at: float | None = None
    ) -> None:
        """Replace the stored endpoint; parks or resumes its deliveries when its status changes.
        `expected_updated_at`: only if the stored one's `updated_at` is still that (nothing
        changed it since it was read), else `Conflict` and nothing is written."""

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint | None: ...

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]: ...

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> bool:
        """Delete the endpoint with its deliveries and attempts; False when it did not exist."""

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        """The worker's view of endpoints (may be cached; writes through this store refresh it)."""

    # event types -----------------------------------------------------------------------------
    async def create_event_type(self, event_type: EventType) -> None:
        """Store a new event type; `Conflict` when its tenant already has one of that name
        (archived or not)."""

    async def update_event_type(self, event_type: EventType) -> None:
        """Replace the stored event type with the same tenant and name (every field but `id`
        and `created_at`); `NotFound` when there is none."""

    async def get_event_type(self, tenant_id: str, name: str) -> EventType | None:
        """The tenant's event type of this name, archived or not; None when there is none."""

    async def event_types_by_name(
        self, tenant_id: str, names: Collection[str]
    ) -> dict[str, EventType]:
        """The tenant's event types among `names` (archived ones too), by name. One query:
        publishing calls it for every event or batch."""

    async def list_event_types(
        self,
        tenant_id: str | None,
        *,
        include_archived: bool,
        limit: int,
        cursor: str | None = None,
    ) -> Page[EventType]:
        """Event types newest first (id descending); `tenant_id` None: every tenant's. Archived
        ones only with `include_archived`."""

    # events ----------------------------------------------------------------------------------
    async def publish(
        self, events: Sequence[Event], *, idempotent_since: float | None = None
    ) -> list[PublishResult]:
        """Store the events (in order) and their deliveries in one transaction: all or none.

        An event with an idempotency key that matches an earlier event of its tenant created at
        or after `idempotent_since` (None: ever) is not stored; its result is the earlier event
        with `duplicate=True` and that event's delivery count. Earlier events of the same call
        count, so a key repeated within one batch yields one event.
        """

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event | None: ...

    async def list_events(
        self,
        tenant_id: str | None,
        filter: EventFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Event]:
        """Events matching `filter`, newest first (id descending); `tenant_id` None: every
        tenant's."""

    # the worker's side -----------------------------------------------------------------------
    async def claim(
        self, *, worker_id: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedDelivery]: ...

    async def record(
        self, *, worker_id: str, results: Sequence[AttemptResult], now: float
    ) -> list[BreakerChange]:
        """Store the attempts and apply the results (see the module docstring); returns the
        circuit-breaker transitions the results caused."""

    async def release(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        """Give back leases without an attempt (graceful shutdown); they are due again at once."""

    async def release_worker(self, *, worker_id: str, now: float) -> int:
        """Give back every lease `worker_id` holds, without an attempt: the worker is gone (a
        worker process that died); they are due again at once. Returns how many."""

    async def defer(self, *, worker_id: str, until: Mapping[str, float], now: float) -> None:
        """Give back leases without an attempt, delivery id -> when it is due again."""

    async def throttle(
        self, *, requests: Sequence[ThrottleRequest], now: float
    ) -> dict[str, ThrottleGrant]:
        """Take tokens from the endpoints' shared buckets; endpoint id -> what was granted."""

    async def back_off(self, *, until: Mapping[str, float], now: float) -> None:
        """Send nothing to these endpoints before the given times (endpoint id -> time)."""

    async def divert(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        """Give back leases without an attempt, each delivery due at once at its endpoint's
        fallback URL with a fresh attempt budget (`fallback` set): its breaker stayed open too
        long. Like `release`, a delivery whose endpoint is no longer active is parked."""

    async def endpoint_gates(self, endpoint_ids: Collection[str]) -> dict[str, Gate]:
        """The shared sending state of these endpoints (those that have one), by id."""

    async def tripped_breakers(self, *, limit: int) -> dict[str, Gate]:
        """Up to `limit` endpoints whose circuit breaker is not closed (metrics), by id."""

    async def recover(self, *, now: float) -> int:
        """At start-up, free leases that no live worker can hold (returns how many)."""

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due (None when nothing is pending)."""

    # deliveries, attempts, dead letters ------------------------------------------------------
    async def list_deliveries(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]: ...

    async def get_delivery(self, tenant_id: str | None, delivery_id: str) -> Delivery | None: ...

    async def list_attempts(self, tenant_id: str | None, delivery_id: str) -> list[Attempt]: ...

    async def requeue(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        delivery_ids: Sequence[str] | None = None,
        now: float,
        limit: int | None = None,
    ) -> int:
        """Make matching deliveries due now with a fresh attempt budget (retry / replay).

        Deliveries of endpoints that are not active are parked instead. Returns how many changed.
        """

    async def purge(self, tenant_id: str | None, filter: DeliveryFilter) -> int:
        """Delete matching deliveries (and their attempts); returns how many."""

    # stats and metrics -----------------------------------------------------------------------
    async def count_deliveries(
        self, tenant_id: str | None, *, since: float, endpoint_id: str | None = None
    ) -> list[DeliveryCount]:
        """Deliveries created at or after `since` (of one endpoint when given), counted per
        (endpoint_id, event_type, status); groups with no delivery are left out, order is free.
        """

    async def sample_attempts(
        self,
        tenant_id: str | None,
        *,
        since: float,
        endpoint_id: str | None = None,
        limit: int,
    ) -> AttemptSample:
        """Attempts started at or after `since` (of one endpoint when given; of the tenant's
        endpoints when `tenant_id` is set): their count, the sum of their `duration_ms`, and the
        `duration_ms` of the `limit` most recently started among them (for percentiles).
        """

    async def queue_counts(self, *, now: float) -> QueueCounts:
        """Deliveries of every tenant in the statuses that wait (see `QueueCounts`). Called for
        metrics about once a second: it must stay cheap (an index count, no table scan)."""


@runtime_checkable
class WakeupSource(Protocol):
    """A store that hears when work may have become due in another process (PostgreSQL's
    LISTEN/NOTIFY). Optional: the worker subscribes when its store offers it, and keeps polling
    either way; single-process stores have nothing to add to the worker's own wake-ups."""

    def subscribe_wakeups(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on the event loop at each hint; returns a function to unsubscribe."""
        ...
