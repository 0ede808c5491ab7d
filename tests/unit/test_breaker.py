"""The circuit breaker's transitions, with time passed in."""

from __future__ import annotations

import pytest

from hookd.domain import errors
from hookd.policy.breaker import (
    HISTORY,
    Breaker,
    BreakerSettings,
    BreakerState,
    allow,
    record,
    record_successes,
    verdict,
)
from hookd.policy.retry import ErrorKind

S = BreakerSettings(
    window=60, buckets=6, min_requests=10, failure_rate=0.5, cooldown=30, max_cooldown=120
)


def feed(breaker: Breaker, outcomes: str, now: float) -> Breaker:
    """'s' success, 'f' failure, all at `now`."""
    for outcome in outcomes:
        breaker = record(breaker, outcome == "s", now, S)
    return breaker


def test_stays_closed_below_the_minimum_volume() -> None:
    breaker = feed(Breaker(), "f" * 9, now=1000)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.counts(1000, S) == (0, 9)


def test_opens_when_the_failure_rate_exceeds_the_threshold() -> None:
    breaker = feed(Breaker(), "sssss" + "fffff", now=1000)  # exactly 50 %: not above
    assert breaker.state is BreakerState.CLOSED
    breaker = feed(breaker, "f", now=1001)
    assert breaker.state is BreakerState.OPEN
    assert breaker.until == 1001 + 30  # the cool-down
    assert breaker.cooldown == 30
    assert breaker.tripped_at == 1001
    assert breaker.history[-1].reason == "6 of 11 attempts failed in 60 s"


def test_old_buckets_leave_the_window() -> None:
    breaker = feed(Breaker(), "f" * 9, now=1000)
    breaker = feed(breaker, "f", now=1000 + 61)  # the nine are out of the window
    assert breaker.state is BreakerState.CLOSED
    assert breaker.counts(1061, S) == (0, 1)
    assert len(breaker.buckets) == 1


def test_open_refuses_until_the_cooldown_then_lets_one_probe() -> None:
    breaker = feed(Breaker(), "f" * 10, now=1000)
    assert allow(breaker, 1029.9, S) == (False, breaker)
    ok, probing = allow(breaker, 1030, S)
    assert ok
    assert probing.state is BreakerState.HALF_OPEN
    assert allow(probing, 1031, S)[0] is False  # only one probe at a time
    assert allow(probing, 1061, S)[0] is True  # a probe lost with its worker is replaced


def test_a_disabled_breaker_lets_everything_through() -> None:
    breaker = feed(Breaker(), "f" * 10, now=1000)
    off = BreakerSettings(enabled=False)
    assert allow(breaker, 1001, off) == (True, breaker)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, True),
        (204, None, True),
        (400, None, True),  # the receiver answered: it is up
        (404, None, True),
        (500, None, False),
        (503, None, False),
        (408, None, False),
        (429, None, None),  # the back-off answers it
        (410, None, None),  # the endpoint is disabled anyway
        (None, ErrorKind.TIMEOUT, False),
        (None, ErrorKind.CONNECTION, False),
        (None, ErrorKind.BLOCKED, None),  # we refused the address: not the receiver's doing
    ],
)
def test_what_an_attempt_tells_the_breaker(
    status: int | None, error: ErrorKind | None, expected: bool | None
) -> None:
    assert verdict(status, error) is expected


def test_a_successful_probe_closes_with_a_clean_window() -> None:
    breaker = feed(Breaker(), "f" * 10, now=1000)
    _, probing = allow(breaker, 1030, S)
    closed = record(probing, True, 1031, S)
    assert closed.state is BreakerState.CLOSED
    assert closed.counts(1031, S) == (0, 0)
    assert closed.tripped_at is None
    assert allow(closed, 1031, S)[0] is True
    assert [(t.from_state, t.to_state, t.at) for t in closed.history] == [
        (BreakerState.CLOSED, BreakerState.OPEN, 1000),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, 1030),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, 1031),
    ]


def test_a_failed_probe_reopens_with_a_doubled_capped_cooldown() -> None:
    breaker = feed(Breaker(), "f" * 10, now=1000)
    waits = []
    now = 1000.0
    for _ in range(6):
        now = breaker.until
        _, probing = allow(breaker, now, S)
        breaker = record(probing, False, now + 1, S)
        assert breaker.state is BreakerState.OPEN
        waits.append(breaker.cooldown)
    assert waits == [60, 120, 120, 120, 120, 120]
    assert breaker.tripped_at == 1000  # open since the first trip, through every probe
    assert len(breaker.history) == HISTORY  # bounded


def test_stragglers_while_open_change_nothing() -> None:
    breaker = feed(Breaker(), "f" * 10, now=1000)
    assert record(breaker, True, 1001, S) == breaker
    assert record(breaker, False, 1001, S) == breaker


def test_state_round_trips_through_a_dict() -> None:
    breaker = feed(Breaker(), "ssffsf", now=1000)
    assert Breaker.from_dict(breaker.to_dict()) == breaker
    opened = feed(Breaker(), "f" * 10, now=1000)
    assert Breaker.from_dict(opened.to_dict()) == opened
    _, probing = allow(opened, 1030, S)
    assert Breaker.from_dict(probing.to_dict()) == probing


def test_settings_validate_and_round_trip() -> None:
    assert BreakerSettings.from_dict(S.to_dict()) == S
    assert BreakerSettings.from_dict({"cooldown": 5}, base=S) == BreakerSettings(
        window=60, buckets=6, min_requests=10, failure_rate=0.5, cooldown=5, max_cooldown=120
    )
    with pytest.raises(errors.ValidationError) as caught:
        BreakerSettings.from_dict({"enabled": 1, "min_requests": 2.5})
    assert sorted(p.path for p in caught.value.problems) == [
        "breaker.enabled",
        "breaker.min_requests",
    ]
    with pytest.raises(errors.ValidationError) as caught:
        BreakerSettings.from_dict({"failure_rate": 2, "window": "x", "nope": 1})
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == ["breaker.nope"]
    with pytest.raises(errors.ValidationError) as caught:
        BreakerSettings.from_dict({"failure_rate": 2, "window": "x"})
    assert [p.path for p in caught.value.problems] == ["breaker.window"]
    with pytest.raises(errors.ValidationError) as caught:
        BreakerSettings(failure_rate=0, cooldown=500, max_cooldown=100)
    assert sorted(p.path for p in caught.value.problems) == [
        "breaker.cooldown",
        "breaker.failure_rate",
    ]


@pytest.mark.parametrize("count", [0, 1, 5, 40])
def test_successes_in_one_step_are_the_same_as_one_by_one(count: int) -> None:
    closed = feed(Breaker(), "sfsf", now=1000)
    opened = feed(Breaker(), "f" * 10, now=1000)
    _, probing = allow(opened, 1030, S)
    for breaker in (Breaker(), closed, opened, probing):
        assert record_successes(breaker, count, 1031, S) == feed(breaker, "s" * count, now=1031)
