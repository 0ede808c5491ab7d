"""The storage port: everything the core asks of a database, and nothing else.

Adapters: `hookd.store.sqlite.SqliteStore` (embedded default) and `hookd.store.memory.MemoryStore`
(an in-memory fake for unit tests, shipped with the package). Every method that reads or writes
tenant data takes `tenant_id`; `None` means "all tenants" (admin credentials only).

Semantics every adapter must honour (the contract tests in tests/integration/test_store_contract.py
hold each adapter to them):

- `publish` stores each event and one delivery per matching endpoint in one transaction, and an
  idempotency key seen before for the tenant returns the first event with `duplicate=True`.
  Deliveries for endpoints that are not active are created `parked`.
- `claim` takes up to `limit` due deliveries (`pending` with `next_attempt_at <= now`, or `sending`
  whose lease has expired), oldest due first, marks them `sending` under a lease owned by
  `worker_id` until `now + lease_seconds`.
- `record` stores attempts and applies each result only while the worker still holds the lease;
  a retry for an endpoint that is no longer active is parked instead; a result carrying
  `disable_endpoint_reason` disables the endpoint and parks its pending deliveries.
- Pausing or disabling an endpoint (`update_endpoint`) parks its pending deliveries; making it
  active again resumes them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from hookd.domain.models import (
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Event,
    PublishResult,
)


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


T = TypeVar("T")


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

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKey]: ...

    # endpoints -------------------------------------------------------------------------------
    async def create_endpoint(self, endpoint: Endpoint) -> None: ...

    async def update_endpoint(self, endpoint: Endpoint) -> None:
        """Replace the stored endpoint; parks or resumes its deliveries when its status changes."""

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint | None: ...

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]: ...

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> bool:
        """Delete the endpoint with its deliveries and attempts; False when it did not exist."""

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        """The worker's view of endpoints (may be cached; writes through this store refresh it)."""

    # events ----------------------------------------------------------------------------------
    async def publish(self, events: Sequence[Event]) -> list[PublishResult]: ...

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event | None: ...

    # the worker's side -----------------------------------------------------------------------
    async def claim(
        self, *, worker_id: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedDelivery]: ...

    async def record(
        self, *, worker_id: str, results: Sequence[AttemptResult], now: float
    ) -> None: ...

    async def release(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        """Give back leases without an attempt (graceful shutdown); they are due again at once."""

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
