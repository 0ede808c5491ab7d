"""Retry policy: classification, schedules, jitter, Retry-After, decisions, dict round trips."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from hookd.domain import errors
from hookd.policy import retry
from hookd.policy.retry import DecisionKind, ErrorKind, Exponential, OutcomeClass, Schedule

NOW = 1_700_000_000.0


def pinned(value: float) -> Callable[[], float]:
    return lambda: value


MID = pinned(0.5)  # jitter factor exactly 1


# -- classify -------------------------------------------------------------------------------------


def expected_class(status: int) -> OutcomeClass:
    """The table of DESIGN §3, written out independently of the implementation."""
    if 200 <= status < 300:
        return OutcomeClass.SUCCESS
    if status in (408, 425, 429) or 500 <= status < 600:
        return OutcomeClass.RETRY
    if status == 410:
        return OutcomeClass.GONE
    return OutcomeClass.REJECT


@pytest.mark.parametrize("status", range(100, 600))
def test_classify_every_status(status: int) -> None:
    assert retry.classify(status, None) is expected_class(status)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (100, OutcomeClass.REJECT),
        (200, OutcomeClass.SUCCESS),
        (204, OutcomeClass.SUCCESS),
        (299, OutcomeClass.SUCCESS),
        (301, OutcomeClass.REJECT),
        (400, OutcomeClass.REJECT),
        (404, OutcomeClass.REJECT),
        (408, OutcomeClass.RETRY),
        (410, OutcomeClass.GONE),
        (425, OutcomeClass.RETRY),
        (429, OutcomeClass.RETRY),
        (500, OutcomeClass.RETRY),
        (503, OutcomeClass.RETRY),
        (599, OutcomeClass.RETRY),
        (600, OutcomeClass.REJECT),
    ],
)
def test_classify_landmarks(status: int, outcome: OutcomeClass) -> None:
    assert retry.classify(status, None) is outcome


@pytest.mark.parametrize("error", list(ErrorKind))
def test_classify_every_error_kind(error: ErrorKind) -> None:
    expected = OutcomeClass.REJECT if error is ErrorKind.BLOCKED else OutcomeClass.RETRY
    assert retry.classify(None, error) is expected


def test_classify_prefers_the_status_over_an_error() -> None:
    assert retry.classify(200, ErrorKind.PROTOCOL) is OutcomeClass.SUCCESS


def test_classify_needs_status_or_error() -> None:
    with pytest.raises(ValueError, match="status, an error"):
        retry.classify(None, None)


# -- policies -------------------------------------------------------------------------------------


def test_default_policy() -> None:
    assert retry.DEFAULT_DELAYS == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert Schedule(retry.DEFAULT_DELAYS, jitter=0.2) == retry.DEFAULT_POLICY
    assert retry.max_attempts(retry.DEFAULT_POLICY) == 10


def test_max_attempts() -> None:
    assert retry.max_attempts(Schedule((0, 1, 2))) == 3
    assert retry.max_attempts(Exponential(max_attempts=7)) == 7


def test_with_max_attempts_truncates_and_extends_schedules() -> None:
    policy = Schedule((0, 5, 60), jitter=0.1)
    assert retry.with_max_attempts(policy, 2) == Schedule((0, 5), jitter=0.1)
    assert retry.with_max_attempts(policy, 3) == policy
    assert retry.with_max_attempts(policy, 5) == Schedule((0, 5, 60, 60, 60), jitter=0.1)


def test_with_max_attempts_replaces_exponential_limit() -> None:
    policy = Exponential(initial=2, max_attempts=4)
    assert retry.with_max_attempts(policy, 9) == Exponential(initial=2, max_attempts=9)


@pytest.mark.parametrize("n", [0, -1, 101])
def test_with_max_attempts_bounds(n: int) -> None:
    with pytest.raises(ValueError, match=re.escape("1..100")):
        retry.with_max_attempts(retry.DEFAULT_POLICY, n)
    with pytest.raises(ValueError, match=re.escape("1..100")):
        retry.with_max_attempts(Exponential(), n)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schedule(()), "delays: must hold from 1 to 100 delays"),
        (lambda: Schedule((0, -1)), "delays[1]: must be at least 0"),
        (lambda: Schedule((0,), jitter=1.5), "jitter: must be at least 0 and at most 1"),
        (lambda: Exponential(initial=0), "initial: must be greater than 0"),
        (lambda: Exponential(factor=0.5), "factor: must be at least 1"),
        (lambda: Exponential(initial=10, max_delay=5), "max_delay: must be at least the initial"),
        (lambda: Exponential(max_attempts=0), "max_attempts: must be from 1 to 100"),
    ],
)
def test_policies_reject_invalid_values_on_construction(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


# -- next_delay and jitter ------------------------------------------------------------------------


def test_schedule_delays_without_jitter() -> None:
    policy = Schedule((0, 5, 300), jitter=0.0)
    assert [retry.next_delay(policy, n, pinned(0.9)) for n in range(4)] == [0, 5, 300, None]


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2), (0.25, 0.9)])
def test_jitter_scales_the_delay(rand: float, factor: float) -> None:
    delay = retry.next_delay(retry.DEFAULT_POLICY, 2, pinned(rand))
    assert delay == pytest.approx(300 * factor)


def test_jitter_stays_within_bounds_for_every_default_step() -> None:
    for attempts_done, base in enumerate(retry.DEFAULT_DELAYS):
        low = retry.next_delay(retry.DEFAULT_POLICY, attempts_done, pinned(0.0))
        high = retry.next_delay(retry.DEFAULT_POLICY, attempts_done, pinned(1.0))
        assert low == pytest.approx(base * 0.8)
        assert high == pytest.approx(base * 1.2)


def test_first_attempt_is_immediate_even_with_jitter() -> None:
    assert retry.next_delay(retry.DEFAULT_POLICY, 0, pinned(1.0)) == 0
    assert retry.next_delay(Exponential(), 0, pinned(1.0)) == 0


def test_exponential_delays() -> None:
    policy = Exponential(initial=5, factor=2, max_delay=30, max_attempts=6, jitter=0)
    delays = [retry.next_delay(policy, n, MID) for n in range(7)]
    assert delays == [0, 5, 10, 20, 30, 30, None]


def test_exponential_with_huge_factor_does_not_overflow() -> None:
    policy = Exponential(initial=1, factor=1e300, max_delay=3600, max_attempts=100, jitter=0)
    assert retry.next_delay(policy, 99, MID) == 3600


def test_exponential_jitter() -> None:
    policy = Exponential(initial=10, factor=3, jitter=0.5)
    assert retry.next_delay(policy, 2, pinned(0.0)) == pytest.approx(15)
    assert retry.next_delay(policy, 2, pinned(1.0)) == pytest.approx(45)


def test_next_delay_rejects_negative_attempts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        retry.next_delay(retry.DEFAULT_POLICY, -1, MID)


# -- Retry-After ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("  0 ", 0.0),
        ("-5", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, tz=UTC), usegmt=True), 0.0),
        ("Tue, 14 Nov 2023 22:15:20 -0000", 120.0),  # no zone claim: read as UTC
        ("Tue, 14 Nov 2023 23:15:20 +0100", 120.0),
    ],
)
def test_parse_retry_after(value: str, seconds: float) -> None:
    assert retry.parse_retry_after(value, NOW) == pytest.approx(seconds)


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    """Run with the process's local time zone five hours behind UTC."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"  # a POSIX rule: needs no tz database
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
def test_parse_retry_after_ignores_the_local_time_zone() -> None:
    assert retry.parse_retry_after("Tue, 14 Nov 2023 22:15:20 -0000", NOW) == 120.0
    assert retry.parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", NOW) == 120.0


@pytest.mark.parametrize(
    "value", [None, "", "soon", "1.5", "12s", "Wed, 21 Oct 99999 07:28:00 GMT", "1" * 16]
)
def test_parse_retry_after_unparseable(value: str | None) -> None:
    assert retry.parse_retry_after(value, NOW) is None


# -- decide ---------------------------------------------------------------------------------------


def decide(**kwargs: object) -> retry.Decision:
    options: dict[str, object] = {"status": None, "error": None, "attempts_done": 1, "now": NOW}
    options.update(kwargs)
    options.setdefault("rand", MID)
    return retry.decide(retry.DEFAULT_POLICY, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_decide_delivered(status: int) -> None:
    decision = decide(status=status)
    assert decision == retry.Decision(DecisionKind.DELIVERED, None, f"receiver answered {status}")


def test_decide_gone_disables_the_endpoint() -> None:
    assert decide(status=410, attempts_done=10) == retry.Decision(
        DecisionKind.DISABLE, None, "receiver answered 410 Gone"
    )


@pytest.mark.parametrize("status", [301, 400, 401, 404, 422])
def test_decide_rejection_fails_without_retry(status: int) -> None:
    decision = decide(status=status)
    assert decision.kind is DecisionKind.FAILED
    assert decision.next_attempt_at is None
    assert str(status) in decision.reason


def test_decide_blocked_destination_fails() -> None:
    decision = decide(error=ErrorKind.BLOCKED)
    assert decision.kind is DecisionKind.FAILED
    assert "SSRF" in decision.reason


@pytest.mark.parametrize(
    ("status", "error", "cause"),
    [
        (500, None, "receiver answered 500"),
        (408, None, "receiver answered 408"),
        (None, ErrorKind.TIMEOUT, "timeout error"),
        (None, ErrorKind.DNS, "dns error"),
    ],
)
def test_decide_retries_on_schedule(
    status: int | None, error: ErrorKind | None, cause: str
) -> None:
    decision = decide(status=status, error=error, attempts_done=3)
    assert decision == retry.Decision(DecisionKind.RETRY, NOW + 1800, f"{cause}; retrying in 1800s")


def test_decide_applies_jitter() -> None:
    assert decide(status=500, attempts_done=1, rand=pinned(0.0)).next_attempt_at == NOW + 4
    assert decide(status=500, attempts_done=1, rand=pinned(1.0)).next_attempt_at == NOW + 6


def test_decide_gives_up_when_attempts_are_exhausted() -> None:
    assert decide(status=500, attempts_done=9).kind is DecisionKind.RETRY
    decision = decide(status=500, attempts_done=10)
    assert decision == retry.Decision(DecisionKind.DEAD, None, "gave up after 10 attempts")


def test_decide_exhaustion_with_exponential_policy() -> None:
    policy = Exponential(initial=1, max_attempts=2, jitter=0)
    retried = retry.decide(policy, status=None, error=ErrorKind.TLS, attempts_done=1, now=NOW)
    assert retried.next_attempt_at == NOW + 1
    dead = retry.decide(policy, status=None, error=ErrorKind.TLS, attempts_done=2, now=NOW)
    assert dead.kind is DecisionKind.DEAD


def test_decide_honours_a_longer_retry_after() -> None:
    decision = decide(status=429, attempts_done=2, retry_after="3600")
    assert decision.next_attempt_at == NOW + 3600
    assert decision.reason == "receiver answered 429; retrying in 3600s, as its Retry-After asks"


def test_decide_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 7200, tz=UTC), usegmt=True)
    assert decide(status=503, attempts_done=2, retry_after=when).next_attempt_at == NOW + 7200


def test_decide_never_retries_sooner_than_the_schedule() -> None:
    decision = decide(status=503, attempts_done=3, retry_after="1")
    assert decision.next_attempt_at == NOW + 1800
    assert "Retry-After" not in decision.reason


def test_decide_caps_retry_after() -> None:
    decision = decide(status=503, attempts_done=1, retry_after="999999", retry_after_max=600)
    assert decision.next_attempt_at == NOW + 600


def test_decide_cap_does_not_shorten_the_schedule() -> None:
    decision = decide(status=503, attempts_done=3, retry_after="999999", retry_after_max=60)
    assert decision.next_attempt_at == NOW + 1800


def test_decide_ignores_unparseable_retry_after() -> None:
    assert decide(status=500, attempts_done=1, retry_after="later").next_attempt_at == NOW + 5
    # an overloaded receiver's unreadable Retry-After counts as absent: the harder back-off
    assert decide(status=503, attempts_done=1, retry_after="later").next_attempt_at == NOW + 10


def test_decide_ignores_retry_after_on_success_and_rejection() -> None:
    assert decide(status=200, retry_after="60").next_attempt_at is None
    assert decide(status=400, retry_after="60").next_attempt_at is None


def test_decide_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        decide(status=500, attempts_done=0)


def test_decide_uses_random_jitter_by_default() -> None:
    decision = retry.decide(retry.DEFAULT_POLICY, status=500, error=None, attempts_done=2, now=NOW)
    assert decision.next_attempt_at is not None
    assert NOW + 240 <= decision.next_attempt_at <= NOW + 360


# -- dict form ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        retry.DEFAULT_POLICY,
        Schedule((0.5, 10), jitter=0.0),
        Exponential(),
        Exponential(initial=0.5, factor=1.5, max_delay=60, max_attempts=100, jitter=1),
    ],
)
def test_policy_dict_round_trip(policy: retry.RetryPolicy) -> None:
    data = retry.policy_to_dict(policy)
    assert retry.policy_from_dict(data) == policy
    assert retry.policy_to_dict(retry.policy_from_dict(data)) == data


def test_policy_to_dict_shapes() -> None:
    assert retry.policy_to_dict(Schedule((0, 5), jitter=0.1)) == {
        "kind": "schedule",
        "delays": [0, 5],
        "jitter": 0.1,
    }
    assert retry.policy_to_dict(Exponential()) == {
        "kind": "exponential",
        "initial": 5.0,
        "factor": 2.0,
        "max_delay": 86400.0,
        "max_attempts": 10,
        "jitter": 0.2,
    }


def test_policy_from_dict_defaults() -> None:
    assert retry.policy_from_dict({"kind": "schedule", "delays": [0, 5]}) == Schedule((0, 5))
    assert retry.policy_from_dict({"kind": "exponential"}) == Exponential()
    assert retry.policy_from_dict({"kind": "exponential", "factor": 3}) == Exponential(factor=3)


def problems(data: object, **kwargs: str) -> list[tuple[str, str]]:
    with pytest.raises(errors.ValidationError) as exc_info:
        retry.policy_from_dict(data, **kwargs)  # type: ignore[arg-type]
    return [(p.path, p.message) for p in exc_info.value.problems]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], [("retry_policy", "must be an object")]),
        ({}, [("retry_policy.kind", "must be 'schedule' or 'exponential'")]),
        ({"kind": "linear"}, [("retry_policy.kind", "must be 'schedule' or 'exponential'")]),
        ({"kind": "schedule"}, [("retry_policy.delays", "must be a list of numbers")]),
        (
            {"kind": "schedule", "delays": "0,5"},
            [("retry_policy.delays", "must be a list of numbers")],
        ),
        (
            {"kind": "schedule", "delays": []},
            [("retry_policy.delays", "must hold from 1 to 100 delays")],
        ),
        (
            {"kind": "schedule", "delays": [0] * 101},
            [("retry_policy.delays", "must hold from 1 to 100 delays")],
        ),
        (
            {"kind": "schedule", "delays": [0, -1, "5", 604801, True, math.nan, None]},
            [
                ("retry_policy.delays[1]", "must be at least 0 and at most 604800"),
                ("retry_policy.delays[2]", "must be a number"),
                ("retry_policy.delays[3]", "must be at least 0 and at most 604800"),
                ("retry_policy.delays[4]", "must be a number"),
                ("retry_policy.delays[5]", "must be at least 0 and at most 604800"),
                ("retry_policy.delays[6]", "must be a number"),
            ],
        ),
        (
            {"kind": "schedule", "delays": [0], "jitter": 1.01, "initial": 5},
            [
                ("retry_policy.initial", "is not a field of the schedule policy"),
                ("retry_policy.jitter", "must be at least 0 and at most 1"),
            ],
        ),
        (
            {"kind": "schedule", "delays": [0], "jitter": -0.1},
            [("retry_policy.jitter", "must be at least 0 and at most 1")],
        ),
        (
            {
                "kind": "exponential",
                "initial": 0,
                "factor": 0.9,
                "max_delay": math.inf,
                "max_attempts": 2.0,
                "jitter": "0.2",
                "delays": [0],
            },
            [
                ("retry_policy.delays", "is not a field of the exponential policy"),
                ("retry_policy.initial", "must be greater than 0 and at most 604800"),
                ("retry_policy.factor", "must be at least 1"),
                ("retry_policy.max_delay", "must be at least 0 and at most 604800"),
                ("retry_policy.max_attempts", "must be an integer"),
                ("retry_policy.jitter", "must be a number"),
            ],
        ),
        (
            {"kind": "exponential", "initial": 60, "max_delay": 30},
            [("retry_policy.max_delay", "must be at least the initial delay")],
        ),
        (
            {"kind": "exponential", "max_attempts": 101, "factor": 10**400},
            [("retry_policy.max_attempts", "must be from 1 to 100")],
        ),
        (
            {"kind": "exponential", "factor": math.inf},
            [("retry_policy.factor", "must be at least 1")],
        ),
        (
            {"kind": "exponential", "max_attempts": True},
            [("retry_policy.max_attempts", "must be an integer")],
        ),
    ],
)
def test_policy_from_dict_reports_every_problem(
    data: object, expected: list[tuple[str, str]]
) -> None:
    assert problems(data) == expected


def test_policy_from_dict_path_prefix() -> None:
    assert problems({"kind": "schedule", "delays": [-1]}, path="endpoints[0].retry") == [
        ("endpoints[0].retry.delays[0]", "must be at least 0 and at most 604800")
    ]


def test_overloaded_receiver_without_retry_after_backs_off_harder() -> None:
    policy = retry.Schedule((0, 10, 20), jitter=0)
    plain = retry.decide(policy, status=500, error=None, attempts_done=1, now=0.0)
    for status in (429, 503):
        harder = retry.decide(policy, status=status, error=None, attempts_done=1, now=0.0)
        assert plain.next_attempt_at == 10.0
        assert harder.next_attempt_at == 20.0
        assert "overloaded" in harder.reason
    # a Retry-After answer is honoured as given instead
    told = retry.decide(policy, status=429, error=None, attempts_done=1, now=0.0, retry_after="12")
    assert told.next_attempt_at == 12.0
    # and the harder back-off stays within the cap
    capped = retry.decide(
        policy, status=503, error=None, attempts_done=1, now=0.0, retry_after_max=15.0
    )
    assert capped.next_attempt_at == 15.0
