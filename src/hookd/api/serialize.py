"""Records to response bodies: the one place that decides what the API shows of each record.

Times become RFC 3339 strings; header values and secrets never leave (a preview of the newest
secret does).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from hookd import stats
from hookd.api import schemas
from hookd.delivery import probe
from hookd.domain import models
from hookd.engine import EndpointHealth
from hookd.policy import retry, signing
from hookd.policy.breaker import BreakerSettings
from hookd.store.codec import rfc3339
from hookd.store.port import ApiKey, Page

REDACTED = "[redacted]"


def endpoint(record: models.Endpoint) -> schemas.Endpoint:
    return schemas.Endpoint(**_endpoint_fields(record))


def endpoint_created(record: models.Endpoint, secret: str) -> schemas.EndpointCreated:
    return schemas.EndpointCreated(**_endpoint_fields(record), secret=secret)


def endpoint_page(page: Page[models.Endpoint]) -> schemas.EndpointPage:
    return schemas.EndpointPage(
        data=[endpoint(e) for e in page.items], next_cursor=page.next_cursor
    )


def _endpoint_fields(record: models.Endpoint) -> dict[str, Any]:
    newest = max(record.secrets, key=lambda s: s.created_at, default=None)
    return {
        "id": record.id,
        "tenant_id": record.tenant_id,
        "url": record.url,
        "name": record.name,
        "description": record.description,
        "event_types": list(record.event_types),
        "headers": dict.fromkeys(record.headers, REDACTED),
        "timeout": record.timeout,
        "retry_policy": retry.policy_to_dict(record.retry_policy),
        "status": record.status,
        "status_reason": record.status_reason,
        "metadata": dict(record.metadata),
        "secret_preview": (
            None if newest is None else signing.secret_preview(newest.value.reveal())
        ),
        "filter": None if record.filter is None else dict(record.filter),
        "rate_limit": (
            None
            if record.rate_limit is None
            else schemas.RateLimitSettings(
                per_second=record.rate_limit.per_second, burst=record.rate_limit.burst
            )
        ),
        "default_priority": record.default_priority,
        "max_in_flight": record.max_in_flight,
        "ordering": record.ordering,
        "disable_after": record.disable_after,
        "fallback_url": record.fallback_url,
        "breaker": breaker_settings(record.breaker),
        "fallback_after": record.fallback_after,
        "last_success_at": (
            None if record.last_success_at is None else rfc3339(record.last_success_at)
        ),
        "failing_since": None if record.failing_since is None else rfc3339(record.failing_since),
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    }


def breaker_settings(settings: BreakerSettings) -> schemas.BreakerSettings:
    return schemas.BreakerSettings(
        enabled=settings.enabled,
        window=settings.window,
        buckets=settings.buckets,
        min_requests=settings.min_requests,
        failure_rate=settings.failure_rate,
        cooldown=settings.cooldown,
        max_cooldown=settings.max_cooldown,
    )


def _time(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def endpoint_health(health: EndpointHealth) -> schemas.EndpointHealth:
    return schemas.EndpointHealth(
        endpoint_id=health.endpoint_id,
        status=health.status,
        status_reason=health.status_reason,
        last_success_at=_time(health.last_success_at),
        failing_since=_time(health.failing_since),
        breaker=schemas.BreakerHealth(
            state=health.breaker,
            until=_time(health.breaker_until),
            cooldown=health.cooldown,
            tripped_at=_time(health.tripped_at),
            successes=health.successes,
            failures=health.failures,
            settings=breaker_settings(health.settings),
            history=[
                schemas.BreakerTransition.model_validate({**t.to_dict(), "at": rfc3339(t.at)})
                for t in health.history
            ],
        ),
        backoff_until=_time(health.backoff_until),
        tokens=health.tokens,
        checked_at=rfc3339(health.checked_at),
    )


def event_accepted(result: models.PublishResult) -> schemas.EventAccepted:
    return schemas.EventAccepted(**event_accepted_fields(result))


def event_accepted_fields(result: models.PublishResult) -> dict[str, Any]:
    """`EventAccepted` as a plain dict (the publish fast path encodes it as is)."""
    return {
        "id": result.event.id,
        "type": result.event.type,
        "deliveries": result.deliveries,
        "created_at": _created_at(result.event.created_at),
        "duplicate": result.duplicate,
    }


# the events of a batch share their creation time: formatted once, not once per event
_created_at = functools.lru_cache(maxsize=64)(rfc3339)


def event(record: models.Event) -> schemas.Event:
    return schemas.Event(
        id=record.id,
        tenant_id=record.tenant_id,
        type=record.type,
        payload=orjson.loads(record.payload),
        occurred_at=rfc3339(record.occurred_at),
        created_at=rfc3339(record.created_at),
        idempotency_key=record.idempotency_key,
        priority=record.priority,
    )


def event_page(page: Page[models.Event]) -> schemas.EventPage:
    return schemas.EventPage(data=[event(e) for e in page.items], next_cursor=page.next_cursor)


def event_batch_accepted(results: list[models.PublishResult]) -> schemas.EventBatchAccepted:
    return schemas.EventBatchAccepted(data=[event_accepted(r) for r in results])


def event_type(record: models.EventType) -> schemas.EventType:
    return schemas.EventType(
        id=record.id,
        tenant_id=record.tenant_id,
        name=record.name,
        description=record.description,
        schema=None if record.schema is None else dict(record.schema),
        example=None if record.example is None else dict(record.example),
        archived=record.archived,
        created_at=rfc3339(record.created_at),
        updated_at=rfc3339(record.updated_at),
    )


def event_type_page(page: Page[models.EventType]) -> schemas.EventTypePage:
    return schemas.EventTypePage(
        data=[event_type(t) for t in page.items], next_cursor=page.next_cursor
    )


def api_key(record: ApiKey) -> schemas.ApiKey:
    """A key as shown: its prefix, never its hash."""
    return schemas.ApiKey(**_api_key_fields(record))


def api_key_created(record: ApiKey, key: str) -> schemas.ApiKeyCreated:
    return schemas.ApiKeyCreated(**_api_key_fields(record), key=key)


def api_key_page(page: Page[ApiKey]) -> schemas.ApiKeyPage:
    return schemas.ApiKeyPage(data=[api_key(k) for k in page.items], next_cursor=page.next_cursor)


def _api_key_fields(record: ApiKey) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "tenant_id": record.tenant_id,
        "name": record.name,
        "created_at": rfc3339(record.created_at),
        "revoked_at": None if record.revoked_at is None else rfc3339(record.revoked_at),
    }


def delivery(record: models.Delivery) -> schemas.Delivery:
    return schemas.Delivery(**_delivery_fields(record), attempts=record.attempts)


def delivery_detail(
    record: models.Delivery, attempts: list[models.Attempt]
) -> schemas.DeliveryDetail:
    return schemas.DeliveryDetail(
        **_delivery_fields(record),
        attempts=record.attempts,
        attempt_log=[attempt(a) for a in attempts],
    )


def delivery_page(page: Page[models.Delivery]) -> schemas.DeliveryPage:
    return schemas.DeliveryPage(
        data=[delivery(d) for d in page.items], next_cursor=page.next_cursor
    )


def _delivery_fields(record: models.Delivery) -> dict[str, Any]:
    return {
        "id": record.id,
        "event_id": record.event_id,
        "endpoint_id": record.endpoint_id,
        "event_type": record.event_type,
        "status": record.status,
        "priority": record.priority,
        "fallback": record.fallback,
        "total_attempts": record.total_attempts,
        "next_attempt_at": (
            None if record.next_attempt_at is None else rfc3339(record.next_attempt_at)
        ),
        "last_status_code": record.last_status_code,
        "last_error": record.last_error,
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    }


def attempt(record: models.Attempt) -> schemas.Attempt:
    return schemas.Attempt(
        id=record.id,
        number=record.number,
        started_at=rfc3339(record.started_at),
        duration_ms=record.duration_ms,
        outcome=record.outcome,
        status_code=record.status_code,
        error=record.error,
        request_headers=dict(record.request_headers),
        response_headers=dict(record.response_headers),
        response_body=record.response_body,
    )


# endpoint operations and stats -------------------------------------------------------------------
def endpoint_test_result(result: probe.ProbeResult) -> schemas.EndpointTestResult:
    return schemas.EndpointTestResult(
        message_id=result.message_id,
        event_type=result.event_type,
        url=result.url,
        started_at=rfc3339(result.started_at),
        duration_ms=result.duration_ms,
        outcome=result.outcome,
        status_code=result.status_code,
        error=result.error,
        request_headers=dict(result.request_headers),
        response_headers=dict(result.response_headers),
        response_body=result.response_body,
    )


def endpoint_stats(endpoint_id: str, record: stats.Stats) -> schemas.EndpointStats:
    return schemas.EndpointStats(
        endpoint_id=endpoint_id,
        **_stats_fields(record),
        by_event_type=[_event_type_stats(g) for g in record.by_event_type],
    )


def all_stats(record: stats.Stats) -> schemas.Stats:
    return schemas.Stats(
        **_stats_fields(record),
        by_event_type=[_event_type_stats(g) for g in record.by_event_type],
        by_endpoint=[
            schemas.EndpointStatsRow(
                endpoint_id=g.key,
                total=g.total,
                deliveries=_counts(g.by_status),
                success_rate=g.success_rate,
            )
            for g in record.by_endpoint
        ],
    )


def _stats_fields(record: stats.Stats) -> dict[str, Any]:
    latency = record.latency
    return {
        "window": round(record.until - record.since, 3),
        "since": rfc3339(record.since),
        "until": rfc3339(record.until),
        "total": record.total,
        "deliveries": _counts(record.by_status),
        "success_rate": record.success_rate,
        "latency": schemas.Latency(
            attempts=latency.attempts,
            mean_ms=_ms(latency.mean),
            p50_ms=_ms(latency.p50),
            p95_ms=_ms(latency.p95),
            p99_ms=_ms(latency.p99),
            sampled=latency.sampled,
        ),
    }


def _event_type_stats(group: stats.Group) -> schemas.EventTypeStats:
    return schemas.EventTypeStats(
        event_type=group.key,
        total=group.total,
        deliveries=_counts(group.by_status),
        success_rate=group.success_rate,
    )


def _counts(by_status: dict[models.DeliveryStatus, int]) -> schemas.DeliveryCounts:
    return schemas.DeliveryCounts(**{s.value: by_status.get(s, 0) for s in models.DeliveryStatus})


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
