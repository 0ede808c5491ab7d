"""Immutable records of hookd's vocabulary (see DESIGN §1) and their states.

Records are frozen dataclasses; changes make new records with `dataclasses.replace`. The few
built once per attempt on the delivery path (`Attempt`, `ClaimedDelivery`, `AttemptResult`) are
NamedTuples instead (`_replace`): just as immutable, and built in a third of the time (a frozen
dataclass sets each field through `object.__setattr__`: 1.3-1.8 µs a record against 0.4-0.6,
about 4% of a delivery's CPU).
Times are Unix seconds (float). Secrets are wrapped in `Secret` so they never show in a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from hookd.policy.breaker import BreakerSettings
from hookd.policy.retry import RetryPolicy

DEFAULT_TENANT = "default"

#: No headers (the default of a record's header mappings; read-only, so it can be shared).
NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: The operational event published into an endpoint's tenant when the endpoint is disabled (by a
#: 410 Gone, or by failing without success for its `disable_after`); payload: endpoint_id, url,
#: reason, disabled_at. Never delivered to the disabled endpoint itself.
ENDPOINT_DISABLED = "endpoint.disabled"

#: Delivery priorities: higher is claimed first among due deliveries (DESIGN §3). The claim
#: queries list every level (store/*/queries.sql); a test keeps them in step with these bounds.
MIN_PRIORITY = -10
MAX_PRIORITY = 10


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


class EndpointOrdering(StrEnum):
    """How an endpoint's deliveries are ordered (DESIGN §3)."""

    NONE = "none"  # concurrently, highest priority and earliest due first
    #: strictly in publish order: one at a time, the next waits (`queued`) until the one before
    #: is delivered or ended (failed, dead); a failing head blocks this endpoint only
    FIFO = "fifo"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due now or scheduled for a retry
    SENDING = "sending"  # claimed by a worker under a lease
    DELIVERED = "delivered"
    FAILED = "failed"  # the receiver rejected it (4xx/3xx): not retried, replayable
    DEAD = "dead"  # attempts exhausted: a dead letter, replayable
    PARKED = "parked"  # its endpoint is paused or disabled: kept, resumes with the endpoint
    QUEUED = "queued"  # FIFO endpoint: waits for the delivery before it to end


def first_status(in_order: bool, active: bool) -> DeliveryStatus:
    """A new delivery's status: queued behind the head of its FIFO endpoint (`in_order`),
    pending for an active endpoint, parked for a paused or disabled one."""
    if in_order:
        return DeliveryStatus.QUEUED
    return DeliveryStatus.PENDING if active else DeliveryStatus.PARKED


#: Statuses that end a delivery without success: the dead-letter list.
DEAD_LETTER_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.DEAD)
#: Statuses that end a delivery: on a FIFO endpoint, the next one may go.
ENDED_STATUSES = (DeliveryStatus.DELIVERED, *DEAD_LETTER_STATUSES)


class Secret:
    """A secret string that never shows itself in `repr`/`str`; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """One signing secret of an endpoint; during a rotation the old one carries `expires_at`."""

    value: Secret
    created_at: float
    expires_at: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class EndpointRateLimit:
    """An endpoint's delivery rate limit: a token bucket of `burst` tokens refilled at
    `per_second`, shared by every worker process (hookd.policy.ratelimit)."""

    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    secrets: tuple[EndpointSecret, ...]
    retry_policy: RetryPolicy
    timeout: float
    created_at: float
    updated_at: float
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    status: EndpointStatus = EndpointStatus.ACTIVE
    status_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: A payload filter, stored as given (a JSON object) and not evaluated yet.
    filter: Mapping[str, Any] | None = None
    rate_limit: EndpointRateLimit | None = None
    #: Deliveries in flight to it at once, per worker process; None: the worker's default.
    max_in_flight: int | None = None
    #: The priority of its deliveries when an event gives none (MIN_PRIORITY..MAX_PRIORITY).
    default_priority: int = 0
    ordering: EndpointOrdering = EndpointOrdering.NONE
    #: Seconds failing without a success after which it is disabled; None: the server's default.
    disable_after: float | None = None
    #: Kept by the store as attempts are recorded (read-only for the API): the last success, and
    #: since when it has been failing without one (None: not failing).
    last_success_at: float | None = None
    failing_since: float | None = None
    #: Where a delivery goes once it is dead-lettered at `url` (same body, secret and
    #: webhook-id, plus `webhook-fallback: true`), with attempts of its own; None: nowhere.
    fallback_url: str | None = None
    #: Its circuit breaker (hookd.policy.breaker); `enabled=False` turns it off.
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    #: Seconds its breaker may stay open before waiting deliveries go to `fallback_url` instead
    #: (None: they wait for the breaker to close).
    fallback_after: float | None = None

    def signing_keys_at(self, now: float) -> list[str]:
        """The secrets to sign with now: the newest first, then any still inside a grace period."""
        live = [s for s in self.secrets if s.valid_at(now)]
        live.sort(key=lambda s: s.created_at, reverse=True)
        return [s.value.reveal() for s in live]


@dataclass(frozen=True, slots=True)
class EventType:
    """A tenant's declaration of an event type: its payload's JSON Schema (draft 2020-12) and an
    example. Archived types stay readable but can no longer be published."""

    id: str
    tenant_id: str
    name: str
    created_at: float
    updated_at: float
    description: str | None = None
    schema: Mapping[str, Any] | None = None  # None: any JSON object is accepted
    example: Mapping[str, Any] | None = None
    archived: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    tenant_id: str
    type: str
    payload: bytes  # the JSON object exactly as it will be embedded in the body's `data`
    occurred_at: float
    created_at: float
    idempotency_key: str | None = None
    #: The priority of its deliveries; None: each endpoint's `default_priority`.
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int  # attempts in the current run (reset by a replay)
    total_attempts: int  # attempts ever made
    next_attempt_at: float | None
    created_at: float
    updated_at: float
    priority: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    fallback: bool = False  # dead-lettered at its endpoint's url: now sent to its fallback_url


class Attempt(NamedTuple):
    id: str
    delivery_id: str
    endpoint_id: str
    number: int  # 1-based, over the delivery's whole life
    started_at: float
    duration_ms: float
    outcome: str  # OutcomeClass value: success / retry / reject / gone
    status_code: int | None = None
    error: str | None = None  # ErrorKind value plus detail, e.g. "timeout: no response in 5.0s"
    request_headers: Mapping[str, str] = NO_HEADERS
    response_headers: Mapping[str, str] = NO_HEADERS
    response_body: str | None = None  # bounded excerpt


class ClaimedDelivery(NamedTuple):
    """What a worker needs to send one delivery; `body` is the exact wire body."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempts: int  # attempts already made in this run
    total_attempts: int
    body: bytes
    priority: int = 0
    fallback: bool = False  # to its endpoint's fallback_url


class AttemptResult(NamedTuple):
    """A finished attempt plus the state the policy decided for its delivery."""

    attempt: Attempt
    status: DeliveryStatus
    next_attempt_at: float | None
    disable_endpoint_reason: str | None = None  # set when the endpoint must be disabled (410)
    #: Seconds its endpoint may fail without a success before it is disabled (None: never).
    disable_after: float | None = None
    #: Dead-lettered at the endpoint's url: due again (status pending) with a fresh attempt
    #: budget, to the endpoint's fallback_url.
    to_fallback: bool = False
    #: What the attempt tells its endpoint's circuit breaker: the receiver answered (True), it
    #: failed (False), or nothing (None: a 429, an attempt at the fallback URL, no breaker).
    breaker_success: bool | None = None
    breaker_settings: BreakerSettings | None = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    event: Event
    deliveries: int
    duplicate: bool = False  # True when an idempotency key matched an earlier event
