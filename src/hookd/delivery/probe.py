"""Test sends: one synthetic, signed event to one endpoint, now, outside the delivery queue.

It goes through the same sender as real deliveries (so the same SSRF guard, timeout and bounded
read) with the same headers and signatures (`worker.build_headers`). Nothing is stored: no
event, no delivery, no attempt, no retry, and neither stats nor metrics count it. The receiver
sees a `webhook-id` starting with `test_`, new for every test send.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from hookd.delivery import worker
from hookd.delivery.sender import Sender
from hookd.domain import ids
from hookd.domain.models import Endpoint
from hookd.policy import retry
from hookd.store import codec

#: The `webhook-id` prefix of test sends.
TEST_ID_PREFIX = "test"
#: The event type of a test send that names none.
DEFAULT_EVENT_TYPE = "hookd.test"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    message_id: str  # the webhook-id sent
    event_type: str
    url: str
    started_at: float
    duration_ms: float
    outcome: str  # OutcomeClass value: success / retry / reject / gone
    status_code: int | None
    error: str | None
    request_headers: Mapping[str, str]  # as sent, custom header values redacted
    response_headers: Mapping[str, str]
    response_body: str | None  # bounded excerpt


async def send_test(
    sender: Sender, endpoint: Endpoint, event_type: str, payload: bytes
) -> ProbeResult:
    """Send `payload` (JSON object bytes) as an event of `event_type` to `endpoint` once."""
    started = time.time()
    message_id = ids.new_id(TEST_ID_PREFIX, now=started)
    body = codec.wire_body(event_type, started, payload)
    headers = worker.build_headers(endpoint, message_id, body, started)
    outcome = await sender.send(endpoint.url, headers, body, timeout=endpoint.timeout)
    return ProbeResult(
        message_id=message_id,
        event_type=event_type,
        url=endpoint.url,
        started_at=started,
        duration_ms=round(outcome.duration_ms, 3),
        outcome=retry.classify(outcome.status, outcome.error_kind).value,
        status_code=outcome.status,
        error=outcome.error,
        request_headers=worker.redact_headers(headers),
        response_headers=outcome.response_headers,
        response_body=outcome.body_excerpt,
    )
