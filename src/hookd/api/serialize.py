"""Records to response bodies: the one place that decides what the API shows of each record.

Times become RFC 3339 strings; header values and secrets never leave (a preview of the newest
secret does).
"""

from __future__ import annotations

from typing import Any

import orjson

from hookd.api import schemas
from hookd.domain import models
from hookd.policy import retry, signing
from hookd.store.codec import rfc3339
from hookd.store.port import Page

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
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    }


def event_accepted(result: models.PublishResult) -> schemas.EventAccepted:
    return schemas.EventAccepted(
        id=result.event.id,
        type=result.event.type,
        deliveries=result.deliveries,
        created_at=rfc3339(result.event.created_at),
        duplicate=result.duplicate,
    )


def event(record: models.Event) -> schemas.Event:
    return schemas.Event(
        id=record.id,
        type=record.type,
        payload=orjson.loads(record.payload),
        occurred_at=rfc3339(record.occurred_at),
        created_at=rfc3339(record.created_at),
        idempotency_key=record.idempotency_key,
    )


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
