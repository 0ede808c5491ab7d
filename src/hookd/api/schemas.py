"""Request and response bodies of the HTTP API (see API_CONTRACT.md), as pydantic models.

Request bodies forbid unknown fields and check types here; the rules about values (URL shape,
patterns, header names, retry policies, sizes) belong to the engine, so the API, the CLI and
embedding applications share one set of rules and messages. A request hears of every type problem
at once (pydantic), then of every value problem at once (the engine). The engine's rules are still
declared below (`_documented`), so the OpenAPI document shows them.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from hookd.domain.models import DeliveryStatus, EndpointOrdering, EndpointStatus
from hookd.policy.breaker import BreakerSettings as _BreakerDefaults
from hookd.policy.breaker import BreakerState

_REQUEST = ConfigDict(extra="forbid")
_TIME: dict[str, Any] = {"format": "date-time"}  # an RFC 3339 string
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_only(value: object) -> object:
    """Pydantic would also read numbers (Unix time) and other formats as a datetime; the API
    documents RFC 3339 strings, and accepts nothing else."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2026-11-22T10:00:00Z"
        )
    if not isinstance(value, str | datetime.datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


#: A date-time in a request: an RFC 3339 string with a time zone.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]
_RETRY_POLICY_DOC = (
    'A retry policy: `{"kind": "schedule", "delays": [seconds, ...], "jitter": 0.2}` or '
    '`{"kind": "exponential", "initial": 5, "factor": 2, "max_delay": 86400, '
    '"max_attempts": 10, "jitter": 0.2}`. Default: Standard Webhooks\' schedule '
    "(immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h)."
)


_TENANT_DOC = (
    "Admin keys: the tenant to create in (default `default`). Tenant keys may leave it out or "
    "name their own tenant; any other is a 404."
)
_FILTER_DOC = (
    "A payload filter (a JSON object, at most 16 KiB). Accepted and stored as given; it is not "
    "evaluated yet (a later release will)."
)
_RATE_LIMIT_DOC = (
    "Delivery rate limit for this endpoint: a token bucket shared by every worker process. "
    "Deliveries beyond it wait (no attempt is counted). A 429 or 503 from the receiver (with its "
    "`Retry-After`) also holds this endpoint's deliveries back for a while, and no other's."
)
_MAX_IN_FLIGHT_DOC = (
    "Requests in flight to this endpoint at once, per worker process (1..10000); a slow "
    "endpoint holds at most this many of a worker's slots. Null: the server's default "
    "(`HOOKD_ENDPOINT_MAX_IN_FLIGHT`, 32)."
)


def _plain(value: object) -> object:
    """A request model's nested model as the plain JSON value the engine takes."""
    return value.model_dump() if isinstance(value, BaseModel) else value


def _documented(**constraints: Any) -> dict[str, Any]:
    """JSON Schema keywords for a rule the engine enforces (shown in OpenAPI, checked there)."""
    return constraints


def _not_null(**constraints: Any) -> Callable[[JsonDict], None]:
    """Like `_documented`, for a PATCH field that may be left out but not null: the schema
    loses its null branch."""

    def edit(schema: JsonDict) -> None:
        branches = schema.pop("anyOf", [])
        for branch in branches if isinstance(branches, list) else []:
            if isinstance(branch, dict) and branch.get("type") != "null":
                schema.update(branch)
        schema.pop("default", None)
        schema.update(constraints)

    return edit


# problems ---------------------------------------------------------------------------------------
class ProblemError(BaseModel):
    path: str = Field(description="Where the problem is, e.g. `event_types[1]` or `headers.X-Key`.")
    message: str = Field(description="What is wrong there.")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    errors: list[ProblemError] | None = Field(
        default=None, description="Every problem found (validation errors only)."
    )


# endpoints --------------------------------------------------------------------------------------
class RateLimitSettings(BaseModel):
    """A token bucket: at most `burst` requests at once, refilled at `per_second`."""

    model_config = _REQUEST

    per_second: float = Field(
        strict=True,
        allow_inf_nan=False,
        description="Requests a second, sustained (more than 0, at most 1000000).",
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=1_000_000),
    )
    burst: int = Field(
        strict=True,
        description="Requests allowed at once (1..1000000).",
        json_schema_extra=_documented(minimum=1, maximum=1_000_000),
    )


_PRIORITY_DOC = (
    "Among due deliveries, higher priority is sent first (-10..10; 0 is normal). Deliveries "
    "already due are never held back by a priority: a retry waiting for its time does not "
    "block lower priorities."
)


_ORDERING_DOC = (
    "`fifo`: deliveries go strictly in publish order, one at a time; the next waits (`queued`) "
    "until the one before is delivered, failed or dead, so a failing delivery blocks this "
    "endpoint (and only it) through its retries. A replayed dead letter is sent as soon as "
    "possible, out of order. `none` (the default): concurrently, by priority and due time."
)


_DISABLE_AFTER_DOC = (
    "Seconds the endpoint may fail without any success before it is disabled (its deliveries "
    "park and an `endpoint.disabled` event is published); null: the server's default "
    "(`HOOKD_DISABLE_AFTER`, 5 days)."
)


_FALLBACK_DOC = (
    "Where a delivery goes once it is dead-lettered at `url` (attempts exhausted): the same body, "
    "signed with the same secret, with the same `webhook-id` and a `webhook-fallback: true` "
    "header, with a fresh attempt budget; its attempts are recorded on the same delivery. "
    "An http(s) URL, checked like `url`."
)


_BREAKER = _BreakerDefaults()
_BREAKER_DOC = (
    "The endpoint's circuit breaker. When more than `failure_rate` of at least `min_requests` "
    "attempts fail within `window` seconds (a 5xx, 408, timeout or network error; a 429 counts "
    "as neither), it opens: nothing is sent to the endpoint, and nothing is lost, for "
    "`cooldown` seconds; then one probe goes (half-open). A successful probe closes it, a failed "
    "one opens it again for twice as long (at most `max_cooldown`). Every field is optional: on "
    "create those left out take the defaults shown, on update they keep their value."
)
_FALLBACK_AFTER_DOC = (
    "Seconds the circuit breaker may stay open before the deliveries it holds back go to "
    "`fallback_url` (which must be set); null: they wait for the breaker to close."
)


class BreakerSettings(BaseModel):
    """Circuit-breaker settings (see the endpoint's `breaker`)."""

    model_config = _REQUEST

    enabled: bool = Field(
        default=_BREAKER.enabled, strict=True, description="False turns the breaker off."
    )
    window: float = Field(
        default=_BREAKER.window,
        strict=True,
        allow_inf_nan=False,
        description="Seconds over which the failure rate is measured (1..86400).",
        json_schema_extra=_documented(minimum=1, maximum=86400),
    )
    buckets: int = Field(
        default=_BREAKER.buckets,
        strict=True,
        description="The window's resolution: how many slices it is counted in (1..120).",
        json_schema_extra=_documented(minimum=1, maximum=120),
    )
    min_requests: int = Field(
        default=_BREAKER.min_requests,
        strict=True,
        description="No verdict on fewer attempts than this in the window (1..100000).",
        json_schema_extra=_documented(minimum=1, maximum=100_000),
    )
    failure_rate: float = Field(
        default=_BREAKER.failure_rate,
        strict=True,
        allow_inf_nan=False,
        description="Opens when failures / attempts in the window exceeds this (more than 0, "
        "at most 1).",
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=1),
    )
    cooldown: float = Field(
        default=_BREAKER.cooldown,
        strict=True,
        allow_inf_nan=False,
        description="Seconds open before the first probe (0.1..86400, at most `max_cooldown`).",
        json_schema_extra=_documented(minimum=0.1, maximum=86400),
    )
    max_cooldown: float = Field(
        default=_BREAKER.max_cooldown,
        strict=True,
        allow_inf_nan=False,
        description="Each failed probe doubles the wait, up to this many seconds (0.1..86400).",
        json_schema_extra=_documented(minimum=0.1, maximum=86400),
    )


class EndpointResume(BaseModel):
    """Resume options; an empty body resumes with every parked delivery."""

    model_config = _REQUEST

    discard_parked: bool = Field(
        default=False,
        strict=True,
        description="Delete the deliveries that waited (parked, and queued behind them on a "
        "FIFO endpoint) instead of sending them.",
    )


class EndpointCreate(BaseModel):
    model_config = _REQUEST

    url: str = Field(
        description="Where to deliver: an http(s) URL without credentials.",
        json_schema_extra=_documented(minLength=1, maxLength=2048, format="uri"),
    )
    event_types: list[str] = Field(
        description="Event-type patterns to subscribe to: exact (`order.filled`), "
        "a prefix (`order.*`) or everything (`*`).",
        json_schema_extra=_documented(minItems=1, maxItems=100),
    )
    secret: str | None = Field(
        default=None,
        description="The signing secret, `whsec_` + base64 of 24..64 bytes; generated when "
        "absent. Returned once, in this response.",
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Custom headers sent with every request (at most 32). Their values are "
        "stored encrypted and never returned.",
        json_schema_extra=_documented(maxProperties=32),
    )
    timeout: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description="Seconds to wait for the receiver; more than 0 and at most the server's "
        "maximum (60 s by default). Default: the server's default (15 s).",
        json_schema_extra=_documented(exclusiveMinimum=0),
    )
    retry_policy: dict[str, Any] | None = Field(default=None, description=_RETRY_POLICY_DOC)
    max_attempts: int | None = Field(
        default=None,
        strict=True,
        description="Attempts allowed in all (1..100); adjusts the retry policy.",
        json_schema_extra=_documented(minimum=1, maximum=100),
    )
    name: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    description: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Free-form JSON object for the caller (at most 16 KiB).",
    )
    filter: dict[str, Any] | None = Field(default=None, description=_FILTER_DOC)
    rate_limit: RateLimitSettings | None = Field(default=None, description=_RATE_LIMIT_DOC)
    default_priority: int = Field(
        default=0,
        strict=True,
        description="The priority of this endpoint's deliveries when an event gives none. "
        + _PRIORITY_DOC,
        json_schema_extra=_documented(minimum=-10, maximum=10),
    )
    max_in_flight: int | None = Field(
        default=None,
        strict=True,
        description=_MAX_IN_FLIGHT_DOC,
        json_schema_extra=_documented(minimum=1, maximum=10_000),
    )
    ordering: EndpointOrdering = Field(default=EndpointOrdering.NONE, description=_ORDERING_DOC)
    disable_after: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description=_DISABLE_AFTER_DOC,
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=365 * 86400),
    )
    fallback_url: str | None = Field(
        default=None,
        description=_FALLBACK_DOC,
        json_schema_extra=_documented(minLength=1, maxLength=2048, format="uri"),
    )
    breaker: BreakerSettings | None = Field(default=None, description=_BREAKER_DOC)
    fallback_after: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description=_FALLBACK_AFTER_DOC,
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=365 * 86400),
    )
    tenant_id: str | None = Field(default=None, description=_TENANT_DOC)

    def breaker_settings(self) -> dict[str, Any] | None:
        """The breaker fields the request gave (the engine fills in the rest)."""
        return None if self.breaker is None else self.breaker.model_dump(exclude_unset=True)


#: PATCH fields that may be left out but, when given, may not be null.
_NOT_NULLABLE = (
    "url",
    "event_types",
    "headers",
    "metadata",
    "status",
    "default_priority",
    "ordering",
    "breaker",
)


class EndpointUpdate(BaseModel):
    """Change the fields given; fields left out keep their value. Null clears `name` and
    `description`, and resets `timeout` and `retry_policy` to the defaults."""

    model_config = _REQUEST

    url: str | None = Field(
        default=None,
        description="Where to deliver: an http(s) URL without credentials.",
        json_schema_extra=_not_null(minLength=1, maxLength=2048, format="uri"),
    )
    event_types: list[str] | None = Field(
        default=None,
        description="Event-type patterns to subscribe to (replaces the list).",
        json_schema_extra=_not_null(minItems=1, maxItems=100),
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Custom headers (replaces them all; `{}` removes them).",
        json_schema_extra=_not_null(maxProperties=32),
    )
    timeout: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description="Seconds to wait for the receiver; null resets to the default.",
        json_schema_extra=_documented(exclusiveMinimum=0),
    )
    retry_policy: dict[str, Any] | None = Field(
        default=None, description=_RETRY_POLICY_DOC + " Null resets to the default."
    )
    max_attempts: int | None = Field(
        default=None,
        strict=True,
        description="Attempts allowed in all (1..100); adjusts the retry policy.",
        json_schema_extra=_documented(minimum=1, maximum=100),
    )
    name: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    description: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Free-form JSON object (replaces it).",
        json_schema_extra=_not_null(),
    )
    status: EndpointStatus | None = Field(
        default=None,
        description="`paused` or `disabled` parks the endpoint's deliveries; `active` resumes "
        "them.",
        json_schema_extra=_not_null(),
    )
    filter: dict[str, Any] | None = Field(
        default=None, description=_FILTER_DOC + " Null removes it."
    )
    rate_limit: RateLimitSettings | None = Field(
        default=None, description=_RATE_LIMIT_DOC + " Null removes it."
    )
    default_priority: int | None = Field(
        default=None,
        strict=True,
        description="The priority of this endpoint's deliveries when an event gives none "
        "(applies to events published from now on). " + _PRIORITY_DOC,
        json_schema_extra=_not_null(minimum=-10, maximum=10),
    )
    max_in_flight: int | None = Field(
        default=None,
        strict=True,
        description=_MAX_IN_FLIGHT_DOC,
        json_schema_extra=_documented(minimum=1, maximum=10_000),
    )
    ordering: EndpointOrdering | None = Field(
        default=None,
        description=_ORDERING_DOC + " Switching to `none` releases what was queued.",
        json_schema_extra=_not_null(),
    )
    disable_after: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description=_DISABLE_AFTER_DOC + " Null: the server's default.",
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=365 * 86400),
    )
    fallback_url: str | None = Field(
        default=None,
        description=_FALLBACK_DOC + " Null removes it.",
        json_schema_extra=_documented(minLength=1, maxLength=2048, format="uri"),
    )
    breaker: BreakerSettings | None = Field(
        default=None,
        description=_BREAKER_DOC.replace("the defaults shown", "the defaults"),
        json_schema_extra=_not_null(),
    )
    fallback_after: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        description=_FALLBACK_AFTER_DOC,
        json_schema_extra=_documented(exclusiveMinimum=0, maximum=365 * 86400),
    )

    @field_validator(*_NOT_NULLABLE)
    @classmethod
    def _reject_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the request gave, by name: the keyword arguments of `update_endpoint`."""
        changes = {name: _plain(getattr(self, name)) for name in self.model_fields_set}
        if self.breaker is not None:  # only the settings given: the others keep their value
            changes["breaker"] = self.breaker.model_dump(exclude_unset=True)
        return changes


class Endpoint(BaseModel):
    id: str
    tenant_id: str
    url: str
    name: str | None
    description: str | None
    event_types: list[str]
    headers: dict[str, str] = Field(description="Header names; every value reads `[redacted]`.")
    timeout: float = Field(description="Seconds.")
    retry_policy: dict[str, Any]
    status: EndpointStatus
    status_reason: str | None
    metadata: dict[str, Any]
    secret_preview: str | None = Field(description="An abbreviation of the newest secret.")
    filter: dict[str, Any] | None = Field(description=_FILTER_DOC)
    rate_limit: RateLimitSettings | None = Field(description=_RATE_LIMIT_DOC)
    default_priority: int = Field(
        description="The priority of its deliveries when an event gives none."
    )
    max_in_flight: int | None = Field(description=_MAX_IN_FLIGHT_DOC)
    ordering: EndpointOrdering = Field(description=_ORDERING_DOC)
    disable_after: float | None = Field(description=_DISABLE_AFTER_DOC)
    fallback_url: str | None = Field(description=_FALLBACK_DOC)
    breaker: BreakerSettings = Field(description=_BREAKER_DOC)
    fallback_after: float | None = Field(description=_FALLBACK_AFTER_DOC)
    last_success_at: str | None = Field(
        description="The last successful attempt.", json_schema_extra=_TIME
    )
    failing_since: str | None = Field(
        description="Failing without a success since then (null: not failing).",
        json_schema_extra=_TIME,
    )
    created_at: str = Field(json_schema_extra=_TIME)
    updated_at: str = Field(json_schema_extra=_TIME)


class EndpointCreated(Endpoint):
    secret: str = Field(description="The signing secret. Shown only in this response.")


class EndpointPage(BaseModel):
    data: list[Endpoint]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class BreakerTransition(BaseModel):
    """One change of a circuit breaker's state."""

    at: str = Field(json_schema_extra=_TIME)
    from_state: BreakerState = Field(alias="from")
    to_state: BreakerState = Field(alias="to")
    reason: str = Field(description="Why, e.g. `25 of 40 attempts failed in 60 s`.")


class BreakerHealth(BaseModel):
    """An endpoint's circuit breaker now."""

    state: BreakerState = Field(
        description="`closed`: deliveries go; `open`: nothing is sent until `until`; "
        "`half_open`: one probe is out, its answer closes or reopens the breaker."
    )
    until: str | None = Field(
        description="Open: when the next probe may go. Half-open: when the probe out is given "
        "up for lost. Null when closed.",
        json_schema_extra=_TIME,
    )
    cooldown: float = Field(
        description="The cool-down in force, in seconds (it doubles with each failed probe; "
        "0 before the breaker first opens)."
    )
    tripped_at: str | None = Field(
        description="When it last opened from closed (null when it never did).",
        json_schema_extra=_TIME,
    )
    successes: int = Field(description="Attempts that succeeded within the window ending now.")
    failures: int = Field(description="Attempts that failed within the window ending now.")
    settings: BreakerSettings
    history: list[BreakerTransition] = Field(description="The latest transitions, oldest first.")


class EndpointHealth(BaseModel):
    """Whether an endpoint is being delivered to now, and if not, why."""

    endpoint_id: str
    status: EndpointStatus
    status_reason: str | None
    last_success_at: str | None = Field(
        description="The last successful attempt.", json_schema_extra=_TIME
    )
    failing_since: str | None = Field(
        description="Failing without a success since then (null: not failing).",
        json_schema_extra=_TIME,
    )
    breaker: BreakerHealth
    backoff_until: str | None = Field(
        description="The receiver asked to wait (a 429 or 503): nothing is sent before then. "
        "Null: no back-off.",
        json_schema_extra=_TIME,
    )
    tokens: float | None = Field(
        description="Requests the rate limit's bucket allows at once now; null without a rate "
        "limit."
    )
    checked_at: str = Field(json_schema_extra=_TIME)


# events -----------------------------------------------------------------------------------------
class EventBatchItem(BaseModel):
    """One event to publish (an item of a batch; a single publish adds `tenant_id`)."""

    model_config = _REQUEST

    type: str = Field(
        description="The event type, a dotted name such as `order.filled`.",
        json_schema_extra=_documented(minLength=1, maxLength=128),
    )
    payload: dict[str, Any] = Field(description="The event's data: a JSON object.")
    idempotency_key: str | None = Field(
        default=None,
        description="A repeat of this key (per tenant, within the retention window, also within "
        "a batch) returns the first event instead of publishing again. The `Idempotency-Key` "
        "header does the same for a single publish.",
        json_schema_extra=_documented(minLength=1, maxLength=256),
    )
    occurred_at: Timestamp | None = Field(
        default=None, description="When it happened (RFC 3339); default: now."
    )
    priority: int | None = Field(
        default=None,
        strict=True,
        description="The priority of its deliveries; default: each endpoint's "
        "`default_priority`. " + _PRIORITY_DOC,
        json_schema_extra=_documented(minimum=-10, maximum=10),
    )


class EventCreate(EventBatchItem):
    tenant_id: str | None = Field(default=None, description=_TENANT_DOC)


class EventBatch(BaseModel):
    """Up to 1000 events, published all or nothing."""

    model_config = _REQUEST

    events: list[EventBatchItem] = Field(min_length=1, max_length=1000)
    tenant_id: str | None = Field(default=None, description=_TENANT_DOC)


class EventAccepted(BaseModel):
    id: str
    type: str
    deliveries: int = Field(description="How many endpoints it is being delivered to.")
    created_at: str = Field(json_schema_extra=_TIME)
    duplicate: bool = Field(description="True when an idempotency key matched an earlier event.")


class EventBatchAccepted(BaseModel):
    data: list[EventAccepted] = Field(description="One result per event, in the batch's order.")


class Event(BaseModel):
    id: str
    tenant_id: str
    type: str
    payload: dict[str, Any]
    occurred_at: str = Field(json_schema_extra=_TIME)
    created_at: str = Field(json_schema_extra=_TIME)
    idempotency_key: str | None
    priority: int | None = Field(description="As published; null: each endpoint's default.")


class EventPage(BaseModel):
    data: list[Event]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# event types ------------------------------------------------------------------------------------
_SCHEMA_DOC = (
    "A JSON Schema (draft 2020-12) every payload of this type must match; references must be "
    "local (`#…`), `format` is not asserted. Null: any JSON object."
)


class EventTypeCreate(BaseModel):
    model_config = _REQUEST

    name: str = Field(
        description="A dotted name such as `order.filled`; unique per tenant.",
        json_schema_extra=_documented(minLength=1, maxLength=128),
    )
    description: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    payload_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description=_SCHEMA_DOC
    )
    example: dict[str, Any] | None = Field(
        default=None, description="An example payload; it must match the schema."
    )
    archived: bool = Field(
        default=False, strict=True, description="Archived types cannot be published."
    )
    tenant_id: str | None = Field(default=None, description=_TENANT_DOC)


class EventTypeUpdate(BaseModel):
    """Change the fields given. Null clears `description`, `schema` and `example`."""

    model_config = _REQUEST

    description: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))
    payload_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description=_SCHEMA_DOC
    )
    example: dict[str, Any] | None = Field(
        default=None, description="An example payload; it must match the schema."
    )
    archived: bool | None = Field(
        default=None,
        strict=True,
        description="`true` archives (as DELETE does), `false` restores.",
        json_schema_extra=_not_null(),
    )

    @field_validator("archived")
    @classmethod
    def _reject_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields given, as the keyword arguments of `update_event_type`."""
        names = {"payload_schema": "schema"}
        return {names.get(n, n): getattr(self, n) for n in self.model_fields_set}


class EventType(BaseModel):
    id: str
    tenant_id: str
    name: str
    description: str | None
    payload_schema: dict[str, Any] | None = Field(alias="schema", description=_SCHEMA_DOC)
    example: dict[str, Any] | None
    archived: bool
    created_at: str = Field(json_schema_extra=_TIME)
    updated_at: str = Field(json_schema_extra=_TIME)


class EventTypePage(BaseModel):
    data: list[EventType]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# API keys ---------------------------------------------------------------------------------------
class ApiKeyCreate(BaseModel):
    model_config = _REQUEST

    tenant_id: str | None = Field(
        default=None,
        description="The tenant the key is for. Left out: the caller's tenant (admin keys: "
        "`default`). Null: an admin key (every tenant; admin keys only). A tenant key may name "
        "only its own tenant (any other is a 404) and never make an admin key (403).",
    )
    name: str | None = Field(default=None, json_schema_extra=_documented(maxLength=1024))


class ApiKey(BaseModel):
    id: str
    prefix: str = Field(description="The first characters of the key, to recognise it by.")
    tenant_id: str | None = Field(description="Null: an admin key (every tenant).")
    name: str | None
    created_at: str = Field(json_schema_extra=_TIME)
    revoked_at: str | None = Field(json_schema_extra=_TIME)


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The API key. Shown only in this response.")


class ApiKeyPage(BaseModel):
    data: list[ApiKey]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# deliveries -------------------------------------------------------------------------------------
class _DeliveryFields(BaseModel):
    id: str = Field(description="Also the `webhook-id` the receiver sees on every try.")
    event_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    priority: int = Field(description="Higher is sent first among due deliveries (-10..10).")
    fallback: bool = Field(
        description="Dead-lettered at its endpoint's url: now sent to its `fallback_url`."
    )
    total_attempts: int = Field(description="Attempts ever made.")
    next_attempt_at: str | None = Field(json_schema_extra=_TIME)
    last_status_code: int | None
    last_error: str | None
    created_at: str = Field(json_schema_extra=_TIME)
    updated_at: str = Field(json_schema_extra=_TIME)


class Delivery(_DeliveryFields):
    attempts: int = Field(description="Attempts in the current run (a replay resets it).")


class Attempt(BaseModel):
    id: str
    number: int = Field(description="1-based, over the delivery's whole life.")
    started_at: str = Field(json_schema_extra=_TIME)
    duration_ms: float
    outcome: str = Field(description="`success`, `retry`, `reject` or `gone`.")
    status_code: int | None
    error: str | None
    request_headers: dict[str, str] = Field(description="As sent, credentials redacted.")
    response_headers: dict[str, str]
    response_body: str | None = Field(description="The start of the response body.")


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt] = Field(description="Every attempt, oldest first.")


class DeliveryPage(BaseModel):
    data: list[Delivery]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# dead letters -----------------------------------------------------------------------------------
class ReplayRequest(BaseModel):
    """Which dead letters to replay; an empty body replays them all."""

    model_config = _REQUEST

    delivery_ids: list[str] | None = Field(
        default=None, max_length=1000, description="Only these deliveries (at most 1000)."
    )
    endpoint_id: str | None = Field(default=None, description="Only this endpoint's.")
    event_type: str | None = Field(default=None, description="Only this event type's.")
    since: Timestamp | None = Field(
        default=None, description="Only deliveries created at or after this time (RFC 3339)."
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Replay at most this many (1..1000000).",
    )
    tenant_id: str | None = Field(
        default=None,
        description="Admin keys: only this tenant's (default: every tenant). Tenant keys may "
        "name only their own tenant; any other is a 404.",
    )


class Replayed(BaseModel):
    replayed: int = Field(description="How many dead letters are due again.")


class Purged(BaseModel):
    purged: int = Field(description="How many dead letters were deleted.")


# health -----------------------------------------------------------------------------------------
class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str


class Ready(BaseModel):
    status: str = Field(examples=["ready"])


# endpoint operations: secret rotation, test sends ----------------------------------------------
class SecretRotate(BaseModel):
    """Rotate an endpoint's signing secret; an empty body generates a new one."""

    model_config = _REQUEST

    grace_period: float = Field(
        default=86400,
        strict=True,
        allow_inf_nan=False,
        ge=0,
        le=604800,
        description="Seconds the current secrets stay valid beside the new one (default 24 h, "
        "at most 7 days; 0 retires them at once). Until then every request carries one "
        "signature per valid secret.",
    )
    secret: str | None = Field(
        default=None,
        description="The new secret, `whsec_` + base64 of 24..64 bytes; generated when absent.",
    )


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret. Shown only in this response.")
    expires_at: str = Field(
        description="When the previous secrets stop being used.", json_schema_extra=_TIME
    )


class EndpointTest(BaseModel):
    """A synthetic event to send to the endpoint once, now."""

    model_config = _REQUEST

    event_type: str = Field(
        default="hookd.test",
        description="The event type the receiver sees (it need not be subscribed to).",
        json_schema_extra=_documented(minLength=1, maxLength=128),
    )
    payload: dict[str, Any] | None = Field(
        default=None, description='The event\'s `data`; default `{"test": true}`.'
    )


class EndpointTestResult(BaseModel):
    """What the receiver answered. Nothing is stored, retried or counted in stats."""

    message_id: str = Field(description="The `webhook-id` sent (`test_…`, new every time).")
    event_type: str
    url: str
    started_at: str = Field(json_schema_extra=_TIME)
    duration_ms: float
    outcome: str = Field(
        description="`success`; `retry`, `reject` or `gone`: what a real delivery would do next."
    )
    status_code: int | None = Field(description="Null when no response came (see `error`).")
    error: str | None
    request_headers: dict[str, str] = Field(description="As sent, custom values redacted.")
    response_headers: dict[str, str]
    response_body: str | None = Field(description="The start of the response body.")


# stats --------------------------------------------------------------------------------------------
class DeliveryCounts(BaseModel):
    """Deliveries by their status now."""

    pending: int
    sending: int
    delivered: int
    failed: int
    dead: int
    parked: int
    queued: int = Field(description="Waiting behind an earlier delivery (FIFO endpoints).")


_SUCCESS_RATE = (
    "delivered / (delivered + failed + dead), 0..1; null when none has ended. Deliveries still "
    "pending, sending or parked are not counted."
)


class Latency(BaseModel):
    """Attempt durations in milliseconds, over the attempts started in the window; null when
    there were none."""

    attempts: int = Field(description="Attempts started in the window.")
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    sampled: int = Field(description="The latest attempts the percentiles are computed over.")


class EventTypeStats(BaseModel):
    event_type: str
    total: int
    deliveries: DeliveryCounts
    success_rate: float | None = Field(description=_SUCCESS_RATE)


class EndpointStatsRow(BaseModel):
    endpoint_id: str
    total: int
    deliveries: DeliveryCounts
    success_rate: float | None = Field(description=_SUCCESS_RATE)


class EndpointStats(BaseModel):
    endpoint_id: str
    window: float = Field(description="Seconds covered.")
    since: str = Field(json_schema_extra=_TIME)
    until: str = Field(json_schema_extra=_TIME)
    total: int = Field(description="Deliveries created in the window.")
    deliveries: DeliveryCounts
    success_rate: float | None = Field(description=_SUCCESS_RATE)
    latency: Latency
    by_event_type: list[EventTypeStats] = Field(description="Busiest first.")


class Stats(BaseModel):
    window: float = Field(description="Seconds covered.")
    since: str = Field(json_schema_extra=_TIME)
    until: str = Field(json_schema_extra=_TIME)
    total: int = Field(description="Deliveries created in the window.")
    deliveries: DeliveryCounts
    success_rate: float | None = Field(description=_SUCCESS_RATE)
    latency: Latency
    by_event_type: list[EventTypeStats] = Field(description="The busiest `top`, busiest first.")
    by_endpoint: list[EndpointStatsRow] = Field(description="The busiest `top`, busiest first.")
