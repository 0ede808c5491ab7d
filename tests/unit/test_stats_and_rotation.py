"""Pure parts of issue 3's endpoint operations: stats summaries, percentiles, secret rotation,
and the delivery counters behind /metrics."""

from __future__ import annotations

import math

import pytest

from hookd import metrics, stats
from hookd.domain import errors, ids
from hookd.domain.models import Attempt, AttemptResult, DeliveryStatus, EndpointSecret, Secret
from hookd.policy import rotation
from hookd.store.port import AttemptSample, DeliveryCount

D = DeliveryStatus


# stats ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([float(i) for i in range(1, 101)], 0.95, 95.05),
        ([float(i) for i in range(1, 101)], 0.99, 99.01),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    found = stats.percentile(values, q)
    assert found == (None if expected is None else pytest.approx(expected))


def test_summarize() -> None:
    counts = [
        DeliveryCount("ep_a", "order.filled", D.DELIVERED, 6),
        DeliveryCount("ep_a", "order.filled", D.DEAD, 1),
        DeliveryCount("ep_a", "user.created", D.PENDING, 5),
        DeliveryCount("ep_b", "order.filled", D.FAILED, 1),
        DeliveryCount("ep_b", "order.filled", D.DELIVERED, 2),
        DeliveryCount("ep_c", "x.y", D.PARKED, 1),
    ]
    sample = AttemptSample(count=20, total_ms=400.0, durations_ms=[30.0, 10.0, 20.0])
    found = stats.summarize(counts, sample, since=100.0, until=200.0, top=2)
    assert found.total == 16
    assert found.by_status == {D.PENDING: 5, D.SENDING: 0, D.DELIVERED: 8, D.FAILED: 1,
                               D.DEAD: 1, D.PARKED: 1, D.QUEUED: 0}  # fmt: skip
    assert found.success_rate == pytest.approx(8 / 10)  # pending and parked do not count
    assert found.latency == stats.Latency(
        attempts=20, mean=20.0, p50=20.0, p95=pytest.approx(29.0), p99=pytest.approx(29.8),
        sampled=3,
    )  # fmt: skip
    assert [(g.key, g.total) for g in found.by_endpoint] == [("ep_a", 12), ("ep_b", 3)]
    assert found.by_endpoint[1].success_rate == pytest.approx(2 / 3)
    assert [(g.key, g.total) for g in found.by_event_type] == [
        ("order.filled", 10),
        ("user.created", 5),
    ]
    assert found.by_event_type[1].success_rate is None  # nothing ended


def test_summarize_nothing() -> None:
    found = stats.summarize([], AttemptSample(0, 0.0, []), since=0.0, until=1.0, top=10)
    assert found.total == 0 and found.success_rate is None
    assert found.latency == stats.Latency(0, None, None, None, None, 0)
    assert found.by_endpoint == [] and found.by_event_type == []


# rotation ---------------------------------------------------------------------------------------
def secret(n: int) -> str:
    return "whsec_" + (str(n) * 32)[:32]


def test_rotate_keeps_the_old_secret_for_the_grace_period() -> None:
    old = EndpointSecret(Secret(secret(1)), created_at=10.0)
    rotated = rotation.rotate([old], secret(2), now=100.0, grace=50.0)
    assert rotated == (
        EndpointSecret(Secret(secret(2)), 100.0),
        EndpointSecret(Secret(secret(1)), 10.0, expires_at=150.0),
    )
    # a second rotation inside the grace period keeps the earlier end of the oldest one
    again = rotation.rotate(rotated, secret(3), now=120.0, grace=3600.0)
    assert [(s.value.reveal(), s.expires_at) for s in again] == [
        (secret(3), None),
        (secret(2), 3720.0),
        (secret(1), 150.0),
    ]
    # expired secrets are dropped on the next rotation
    later = rotation.rotate(again, secret(4), now=200.0, grace=10.0)
    assert [s.value.reveal() for s in later] == [secret(4), secret(3), secret(2)]
    assert rotation.prune(later, 211.0) == later[:1]


def test_rotate_with_no_grace_retires_the_old_secrets_at_once() -> None:
    old = EndpointSecret(Secret(secret(1)), created_at=10.0)
    assert rotation.rotate([old], secret(2), now=100.0, grace=0) == (
        EndpointSecret(Secret(secret(2)), 100.0),
    )


@pytest.mark.parametrize("grace", [-1.0, 7 * 86400 + 1, math.inf, math.nan])
def test_rotate_refuses_a_grace_out_of_range(grace: float) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        rotation.rotate([], secret(2), now=0.0, grace=grace)
    assert caught.value.problems[0].path == "grace_period"


def test_rotate_refuses_a_secret_in_use_and_too_many_secrets() -> None:
    secrets = (EndpointSecret(Secret(secret(1)), 0.0),)
    with pytest.raises(errors.ValidationError, match="invalid rotation"):
        rotation.rotate(secrets, secret(1), now=1.0, grace=10)
    for n in range(2, 2 + rotation.MAX_LIVE_SECRETS - 1):
        secrets = rotation.rotate(secrets, secret(n), now=float(n), grace=100)
    assert len(secrets) == rotation.MAX_LIVE_SECRETS
    with pytest.raises(errors.Conflict, match="grace period"):
        rotation.rotate(secrets, secret(9), now=10.0, grace=100)


# delivery counters ------------------------------------------------------------------------------
def result(endpoint_id: str, status: DeliveryStatus, ms: float) -> AttemptResult:
    attempt = Attempt(
        id=ids.new_id(ids.ATTEMPT),
        delivery_id="dlv_1",
        endpoint_id=endpoint_id,
        number=1,
        started_at=0.0,
        duration_ms=ms,
        outcome="success",
    )
    return AttemptResult(attempt, status, None)


def test_counters_by_endpoint_and_outcome_with_a_cap() -> None:
    counters = metrics.DeliveryCounters(endpoint_cap=2)
    for endpoint, status in [
        ("ep_a", D.DELIVERED),
        ("ep_a", D.PENDING),
        ("ep_b", D.DEAD),
        ("ep_c", D.FAILED),  # past the cap
        ("ep_d", D.PARKED),  # past the cap
        ("ep_a", D.DELIVERED),
    ]:
        counters.attempt_finished(result(endpoint, status, 1.0))
    rows = {(e, o): n for e, o, n in counters.by_endpoint() if n}
    assert rows == {
        ("ep_a", "delivered"): 2,
        ("ep_a", "retry"): 1,
        ("ep_b", "dead"): 1,
        (metrics.OTHER, "failed"): 1,
        (metrics.OTHER, "parked"): 1,
    }
    assert counters.totals() == {"delivered": 2, "retry": 1, "failed": 1, "dead": 1, "parked": 1}
    assert {e for e, _, _ in counters.by_endpoint()} == {"ep_a", "ep_b", metrics.OTHER}


def test_counters_latency_histogram() -> None:
    counters = metrics.DeliveryCounters()
    for ms in (1.0, 5.0, 7.0, 250.0, 120_000.0):
        counters.attempt_finished(result("ep_a", D.DELIVERED, ms))
    buckets, total = counters.latency()
    cumulative = dict(buckets)
    assert cumulative[0.005] == 2  # 1 ms and exactly 5 ms (le is inclusive)
    assert cumulative[0.01] == 3
    assert cumulative[0.25] == 4
    assert cumulative[60.0] == 4
    assert cumulative[math.inf] == 5
    assert [n for _, n in buckets] == sorted(n for _, n in buckets)
    assert total == pytest.approx(120.263)


def test_published() -> None:
    counters = metrics.DeliveryCounters()
    counters.event_published()
    counters.event_published(3)
    counters.event_published(0)
    assert counters.published == 4
