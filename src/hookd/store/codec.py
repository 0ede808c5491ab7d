"""Row mapping shared by the SQL adapters: records to column values and back.

Secrets and custom headers (which often carry credentials) are encrypted here, at the boundary,
so that nothing above the store sees ciphertext and nothing below it sees plaintext.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

import orjson

from hookd.crypto import SecretBox
from hookd.domain import ids
from hookd.domain.models import (
    ENDPOINT_DISABLED,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointRateLimit,
    EndpointSecret,
    EndpointStatus,
    Event,
    EventType,
    Secret,
)
from hookd.policy import retry
from hookd.policy.admission import Gate
from hookd.policy.breaker import Breaker, BreakerSettings
from hookd.store.port import DeliveryFilter, EventFilter


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def endpoint_to_row(endpoint: Endpoint, box: SecretBox) -> dict[str, Any]:
    secrets = [
        {"v": box.encrypt(s.value.reveal()), "c": s.created_at, "e": s.expires_at}
        for s in endpoint.secrets
    ]
    return {
        "id": endpoint.id,
        "tenant_id": endpoint.tenant_id,
        "url": endpoint.url,
        "name": endpoint.name,
        "description": endpoint.description,
        "event_types": dumps(list(endpoint.event_types)),
        "secrets": dumps(secrets),
        "headers": box.encrypt(dumps(dict(endpoint.headers))),
        "timeout": endpoint.timeout,
        "retry_policy": dumps(retry.policy_to_dict(endpoint.retry_policy)),
        "status": endpoint.status.value,
        "status_reason": endpoint.status_reason,
        "metadata": dumps(dict(endpoint.metadata)),
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "filter": None if endpoint.filter is None else dumps(dict(endpoint.filter)),
        "rate_limit": rate_limit_to_json(endpoint.rate_limit),
        "max_in_flight": endpoint.max_in_flight,
        "default_priority": endpoint.default_priority,
        "ordering": endpoint.ordering.value,
        "disable_after": endpoint.disable_after,
        "fallback_url": endpoint.fallback_url,
        "breaker": breaker_settings_to_json(endpoint.breaker),
        "fallback_after": endpoint.fallback_after,
    }


def breaker_settings_to_json(settings: BreakerSettings) -> str | None:
    return None if settings == BreakerSettings() else dumps(settings.to_dict())


def breaker_settings_from_json(text: str | None) -> BreakerSettings:
    return BreakerSettings() if text is None else BreakerSettings.from_dict(orjson.loads(text))


def gate_from_row(row: Mapping[str, Any]) -> Gate:
    breaker = row["breaker"]
    return Gate(
        tokens=row["tokens"],
        updated_at=row["updated_at"],
        backoff_until=row["backoff_until"],
        breaker=Breaker() if breaker is None else Breaker.from_dict(orjson.loads(breaker)),
    )


def gate_to_params(endpoint_id: str, gate: Gate) -> dict[str, Any]:
    breaker = gate.breaker
    return {
        "endpoint_id": endpoint_id,
        "tokens": gate.tokens,
        "updated_at": gate.updated_at,
        "backoff_until": gate.backoff_until,
        "breaker_state": breaker.state.value,
        "breaker": None if breaker == Breaker() else dumps(breaker.to_dict()),
    }


def rate_limit_to_json(limit: EndpointRateLimit | None) -> str | None:
    if limit is None:
        return None
    return dumps({"per_second": limit.per_second, "burst": limit.burst})


def rate_limit_from_json(text: str | None) -> EndpointRateLimit | None:
    if text is None:
        return None
    data = orjson.loads(text)
    return EndpointRateLimit(per_second=float(data["per_second"]), burst=int(data["burst"]))


def endpoint_from_row(row: Mapping[str, Any], box: SecretBox) -> Endpoint:
    secrets = tuple(
        EndpointSecret(value=Secret(box.decrypt(s["v"])), created_at=s["c"], expires_at=s["e"])
        for s in orjson.loads(row["secrets"])
    )
    return Endpoint(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        name=row["name"],
        description=row["description"],
        event_types=tuple(orjson.loads(row["event_types"])),
        secrets=secrets,
        headers=orjson.loads(box.decrypt(row["headers"])),
        timeout=row["timeout"],
        retry_policy=retry.policy_from_dict(orjson.loads(row["retry_policy"])),
        status=EndpointStatus(row["status"]),
        status_reason=row["status_reason"],
        metadata=orjson.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        filter=None if row["filter"] is None else orjson.loads(row["filter"]),
        rate_limit=rate_limit_from_json(row["rate_limit"]),
        max_in_flight=row["max_in_flight"],
        default_priority=row["default_priority"],
        ordering=EndpointOrdering(row["ordering"]),
        disable_after=row["disable_after"],
        last_success_at=row["last_success_at"],
        failing_since=row["failing_since"],
        fallback_url=row["fallback_url"],
        breaker=breaker_settings_from_json(row["breaker"]),
        fallback_after=row["fallback_after"],
    )


def disabled_event(tenant_id: str, endpoint_id: str, url: str, reason: str, now: float) -> Event:
    """The `endpoint.disabled` event of an endpoint disabled now (see models.ENDPOINT_DISABLED)."""
    payload = {
        "endpoint_id": endpoint_id,
        "url": url,
        "reason": reason,
        "disabled_at": rfc3339(now),
    }
    return Event(
        id=ids.new_id(ids.EVENT, now=now),
        tenant_id=tenant_id,
        type=ENDPOINT_DISABLED,
        payload=orjson.dumps(payload),
        occurred_at=now,
        created_at=now,
    )


def failing_reason(seconds: float) -> str:
    """Why an endpoint was disabled for failing too long, e.g. "no success for 5 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"no success for {n} {unit}{'' if n == 1 else 's'} while failing"
    return f"no success for {seconds:g} s while failing"


def event_from_row(row: Mapping[str, Any]) -> Event:
    return Event(
        id=row["id"],
        tenant_id=row["tenant_id"],
        type=row["type"],
        payload=bytes(row["payload"]),
        occurred_at=row["occurred_at"],
        created_at=row["created_at"],
        idempotency_key=row["idempotency_key"],
        priority=row["priority"],
    )


def event_type_to_row(event_type: EventType) -> dict[str, Any]:
    return {
        "id": event_type.id,
        "tenant_id": event_type.tenant_id,
        "name": event_type.name,
        "description": event_type.description,
        "schema": None if event_type.schema is None else dumps(dict(event_type.schema)),
        "example": None if event_type.example is None else dumps(dict(event_type.example)),
        "archived": int(event_type.archived),
        "created_at": event_type.created_at,
        "updated_at": event_type.updated_at,
    }


def event_type_from_row(row: Mapping[str, Any]) -> EventType:
    return EventType(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        description=row["description"],
        schema=None if row["schema"] is None else orjson.loads(row["schema"]),
        example=None if row["example"] is None else orjson.loads(row["example"]),
        archived=bool(row["archived"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def event_filter_params(f: EventFilter) -> dict[str, Any]:
    """Named parameters for the optional-filter clauses of `list_events`."""
    return {"type": f.type, "created_after": f.created_after, "created_before": f.created_before}


def delivery_from_row(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        status=DeliveryStatus(row["status"]),
        priority=row["priority"],
        attempts=row["attempts"],
        total_attempts=row["total_attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        fallback=bool(row["fallback"]),
    )


def attempt_from_row(row: Mapping[str, Any]) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=row["delivery_id"],
        endpoint_id=row["endpoint_id"],
        number=row["number"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        outcome=row["outcome"],
        status_code=row["status_code"],
        error=row["error"],
        request_headers=orjson.loads(row["request_headers"]),
        response_headers=orjson.loads(row["response_headers"]),
        response_body=row["response_body"],
    )


def storable(value: str | None) -> str | None:
    """Text as both databases can store it: a lone surrogate (a peer's malformed bytes decoded
    leniently) becomes U+FFFD instead of failing the write."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def attempt_to_params(attempt: Attempt) -> tuple[Any, ...]:
    return (
        attempt.id,
        attempt.delivery_id,
        attempt.endpoint_id,
        attempt.number,
        attempt.started_at,
        attempt.duration_ms,
        attempt.outcome,
        attempt.status_code,
        storable(attempt.error),
        dumps(dict(attempt.request_headers)),
        dumps(dict(attempt.response_headers)),
        storable(attempt.response_body),
    )


def wire_body(event_type: str, occurred_at: float, payload: bytes) -> bytes:
    """The Standard Webhooks body `{"type", "timestamp", "data"}`, `data` spliced in as stored."""
    return b"".join(
        (
            b'{"type":',
            orjson.dumps(event_type),
            b',"timestamp":"',
            rfc3339(occurred_at).encode(),
            b'","data":',
            payload,
            b"}",
        )
    )


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 with millisecond precision, e.g. 2026-11-22T10:00:00.123Z: what
    `datetime.fromtimestamp(ts, UTC)` gives (its rounding to the microsecond, then the
    milliseconds cut), with the date and time of the last second asked for kept."""
    global _second  # a one-entry cache; the tuple is replaced whole (threads: no torn read)
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)  # half to even, as datetime rounds
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    seconds = int(whole)
    cached = _second
    if cached[0] != seconds:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        cached = _second = (seconds, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{cached[1]}{micros // 1000:03d}Z"


_second: tuple[int, str] = (-1, "")


def filter_params(f: DeliveryFilter) -> dict[str, Any]:
    """Named parameters for the optional-filter clauses of the delivery queries."""
    return {
        "statuses": dumps([str(s) for s in f.statuses]) if f.statuses else None,
        "endpoint_id": f.endpoint_id,
        "event_id": f.event_id,
        "event_type": f.event_type,
        "created_after": f.created_after,
        "created_before": f.created_before,
        "updated_before": f.updated_before,
    }
