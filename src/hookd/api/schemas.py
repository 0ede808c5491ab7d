"""Request and response bodies of the HTTP API (see API_CONTRACT.md), as pydantic models.

Request bodies forbid unknown fields and check types here; the rules about values (URL shape,
patterns, header names, retry policies, sizes) belong to the engine, so the API, the CLI and
embedding applications share one set of rules and messages. A request hears of every type problem
at once (pydantic), then of every value problem at once (the engine). The engine's rules are still
declared below (`_documented`), so the OpenAPI document shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from hookd.domain.models import DeliveryStatus, EndpointStatus

_REQUEST = ConfigDict(extra="forbid")
_TIME: dict[str, Any] = {"format": "date-time"}  # an RFC 3339 string
_RETRY_POLICY_DOC = (
    'A retry policy: `{"kind": "schedule", "delays": [seconds, ...], "jitter": 0.2}` or '
    '`{"kind": "exponential", "initial": 5, "factor": 2, "max_delay": 86400, '
    '"max_attempts": 10, "jitter": 0.2}`. Default: Standard Webhooks\' schedule '
    "(immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h)."
)


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


#: PATCH fields that may be left out but, when given, may not be null.
_NOT_NULLABLE = ("url", "event_types", "headers", "metadata", "status")


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

    @field_validator(*_NOT_NULLABLE)
    @classmethod
    def _reject_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the request gave, by name: the keyword arguments of `update_endpoint`."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class Endpoint(BaseModel):
    id: str
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
    created_at: str = Field(json_schema_extra=_TIME)
    updated_at: str = Field(json_schema_extra=_TIME)


class EndpointCreated(Endpoint):
    secret: str = Field(description="The signing secret. Shown only in this response.")


class EndpointPage(BaseModel):
    data: list[Endpoint]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# events -----------------------------------------------------------------------------------------
class EventCreate(BaseModel):
    model_config = _REQUEST

    type: str = Field(
        description="The event type, a dotted name such as `order.filled`.",
        json_schema_extra=_documented(minLength=1, maxLength=128),
    )
    payload: dict[str, Any] = Field(description="The event's data: a JSON object.")
    idempotency_key: str | None = Field(
        default=None,
        description="A repeat of this key (per tenant) returns the first event instead of "
        "publishing again. The `Idempotency-Key` header does the same.",
        json_schema_extra=_documented(minLength=1, maxLength=256),
    )
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When it happened (RFC 3339); default: now."
    )


class EventAccepted(BaseModel):
    id: str
    type: str
    deliveries: int = Field(description="How many endpoints it is being delivered to.")
    created_at: str = Field(json_schema_extra=_TIME)
    duplicate: bool = Field(description="True when an idempotency key matched an earlier event.")


class Event(BaseModel):
    id: str
    type: str
    payload: dict[str, Any]
    occurred_at: str = Field(json_schema_extra=_TIME)
    created_at: str = Field(json_schema_extra=_TIME)
    idempotency_key: str | None


# deliveries -------------------------------------------------------------------------------------
class _DeliveryFields(BaseModel):
    id: str = Field(description="Also the `webhook-id` the receiver sees on every try.")
    event_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
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
    since: AwareDatetime | None = Field(
        default=None, description="Only deliveries created at or after this time (RFC 3339)."
    )
    limit: int | None = Field(
        default=None, ge=1, strict=True, description="Replay at most this many."
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
