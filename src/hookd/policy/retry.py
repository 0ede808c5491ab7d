"""What to do after an attempt: classify its outcome, then decide (DESIGN §3).

A retry policy is a value, either an explicit `Schedule` of delays or an `Exponential` backoff;
`decide` turns (policy, outcome, attempts so far, clock) into a `Decision` the worker carries
out. Everything here is pure: the clock and the randomness used for jitter are arguments.

Outcomes:

    2xx                                     SUCCESS  -> DELIVERED
    408, 425, 429, 5xx, network errors      RETRY    -> RETRY on schedule, or DEAD when exhausted
    410 Gone                                GONE     -> DISABLE the endpoint
    other 1xx/3xx/4xx, SSRF guard refusal   REJECT   -> FAILED, no retry
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum

from hookd.domain import errors


class ErrorKind(StrEnum):
    """Why an attempt got no HTTP status at all."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    PROTOCOL = "protocol"
    BLOCKED = "blocked"  # the SSRF guard refused the destination


class OutcomeClass(StrEnum):
    """What an attempt's outcome means for its delivery."""

    SUCCESS = "success"
    RETRY = "retry"
    REJECT = "reject"
    GONE = "gone"


_RETRY_STATUSES = frozenset({408, 425, 429})


def classify(status: int | None, error: ErrorKind | None) -> OutcomeClass:
    """Classify an attempt by its HTTP status, or by its error when there was no response.

    Status codes outside the classes listed in the module docstring (including nonstandard
    ones) are rejections: the receiver answered, and not with success.
    """
    if status is None:
        if error is None:
            raise ValueError("an attempt has a status, an error, or both")
        return OutcomeClass.REJECT if error is ErrorKind.BLOCKED else OutcomeClass.RETRY
    if 200 <= status <= 299:
        return OutcomeClass.SUCCESS
    if status in _RETRY_STATUSES or 500 <= status <= 599:
        return OutcomeClass.RETRY
    if status == 410:
        return OutcomeClass.GONE
    return OutcomeClass.REJECT


MAX_ATTEMPTS = 100
MAX_DELAY = 7 * 86400.0  # seconds; no single wait in a policy may exceed a week
DEFAULT_JITTER = 0.2  # ±20%


class _Checker:
    """Collects the problems found while reading a policy's fields.

    A field that fails its check reads as NaN (or 0 for integers), which every later
    comparison ignores, so one bad field does not cause knock-on problems.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[errors.Problem] = []

    def fail(self, name: str, message: str) -> None:
        where = ".".join(part for part in (self.path, name) if part)
        self.problems.append(errors.Problem(where, message))

    def number(
        self,
        value: object,
        name: str,
        *,
        low: float,
        high: float = math.inf,
        above_low: bool = False,
    ) -> float:
        """`value` if it is a finite number with ``low <= value <= high`` (``low <`` when
        `above_low`)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, "must be a number")
            return math.nan
        low_ok = value > low if above_low else value >= low
        finite = isinstance(value, int) or math.isfinite(value)  # big ints overflow isfinite
        if not (finite and low_ok and value <= high):
            bound = f"greater than {low:g}" if above_low else f"at least {low:g}"
            upper = f" and at most {high:g}" if math.isfinite(high) else ""
            self.fail(name, f"must be {bound}{upper}")
            return math.nan
        return value

    def integer(self, value: object, name: str, *, low: int, high: int) -> int:
        """`value` if it is an integer with ``low <= value <= high``."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "must be an integer")
            return 0
        if not low <= value <= high:
            self.fail(name, f"must be from {low} to {high}")
            return 0
        return value

    def raise_value_error(self) -> None:
        if self.problems:
            raise ValueError("; ".join(f"{p.path}: {p.message}" for p in self.problems))


def _read_schedule(
    check: _Checker, delays: object, jitter: object
) -> tuple[tuple[float, ...], float]:
    if not isinstance(delays, list | tuple):
        check.fail("delays", "must be a list of numbers")
        delays = ()
    elif not 1 <= len(delays) <= MAX_ATTEMPTS:
        check.fail("delays", f"must hold from 1 to {MAX_ATTEMPTS} delays")
    values = tuple(
        check.number(delay, f"delays[{i}]", low=0, high=MAX_DELAY) for i, delay in enumerate(delays)
    )
    return values, check.number(jitter, "jitter", low=0, high=1)


def _read_exponential(
    check: _Checker,
    initial: object,
    factor: object,
    max_delay: object,
    attempts: object,
    jitter: object,
) -> tuple[float, float, float, int, float]:
    initial_value = check.number(initial, "initial", low=0, high=MAX_DELAY, above_low=True)
    factor_value = check.number(factor, "factor", low=1)
    max_delay_value = check.number(max_delay, "max_delay", low=0, high=MAX_DELAY)
    if max_delay_value < initial_value:
        check.fail("max_delay", "must be at least the initial delay")
    return (
        initial_value,
        factor_value,
        max_delay_value,
        check.integer(attempts, "max_attempts", low=1, high=MAX_ATTEMPTS),
        check.number(jitter, "jitter", low=0, high=1),
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    """An explicit list of delays: `delays[i]` is the wait before attempt ``i + 1``.

    `delays[0]` is normally 0 (the first attempt goes out immediately), so the number of
    attempts is ``len(delays)``. Each delay is stretched by up to ±`jitter` (a fraction).
    Invalid values raise ValueError.
    """

    delays: tuple[float, ...]
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        check = _Checker("")
        _read_schedule(check, self.delays, self.jitter)
        check.raise_value_error()


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential backoff: the first attempt is immediate; after failed attempt k (1-based)
    the wait is ``min(initial * factor ** (k - 1), max_delay)``, ±`jitter`.

    Invalid values raise ValueError.
    """

    initial: float = 5.0
    factor: float = 2.0
    max_delay: float = 86400.0
    max_attempts: int = 10
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        check = _Checker("")
        _read_exponential(
            check, self.initial, self.factor, self.max_delay, self.max_attempts, self.jitter
        )
        check.raise_value_error()


RetryPolicy = Schedule | Exponential

#: Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (Standard Webhooks' advice).
DEFAULT_DELAYS = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
DEFAULT_POLICY = Schedule(DEFAULT_DELAYS, jitter=DEFAULT_JITTER)


def max_attempts(policy: RetryPolicy) -> int:
    """How many attempts `policy` allows in all, the first one included."""
    if isinstance(policy, Schedule):
        return len(policy.delays)
    return policy.max_attempts


def with_max_attempts(policy: RetryPolicy, n: int) -> RetryPolicy:
    """`policy` allowing `n` attempts (1..100). A schedule is truncated, or extended by
    repeating its last delay."""
    if not 1 <= n <= MAX_ATTEMPTS:
        raise ValueError(f"max attempts must be 1..{MAX_ATTEMPTS}, not {n}")
    if isinstance(policy, Exponential):
        return dataclasses.replace(policy, max_attempts=n)
    delays = policy.delays[:n] + (policy.delays[-1],) * (n - len(policy.delays))
    return dataclasses.replace(policy, delays=delays)


def policy_to_dict(policy: RetryPolicy) -> dict[str, object]:
    """A JSON-ready form of `policy`; `policy_from_dict` reads it back."""
    if isinstance(policy, Schedule):
        return {"kind": "schedule", "delays": list(policy.delays), "jitter": policy.jitter}
    return {
        "kind": "exponential",
        "initial": policy.initial,
        "factor": policy.factor,
        "max_delay": policy.max_delay,
        "max_attempts": policy.max_attempts,
        "jitter": policy.jitter,
    }


_INVALID = "invalid retry policy"
_SCHEDULE_KEYS = frozenset({"kind", "delays", "jitter"})
_EXPONENTIAL_KEYS = frozenset({"kind", "initial", "factor", "max_delay", "max_attempts", "jitter"})


def policy_from_dict(data: Mapping[str, object], *, path: str = "retry_policy") -> RetryPolicy:
    """Read a policy from its dict form, checking everything.

    Fields other than ``kind`` and a schedule's ``delays`` may be omitted and take their
    defaults. Raises `errors.ValidationError` listing every problem, each with a path under
    `path`, e.g. ``retry_policy.delays[2]``.
    """
    if not isinstance(data, Mapping):
        raise errors.ValidationError(_INVALID, [errors.Problem(path, "must be an object")])
    kind = data.get("kind")
    if kind not in ("schedule", "exponential"):
        problem = errors.Problem(f"{path}.kind", "must be 'schedule' or 'exponential'")
        raise errors.ValidationError(_INVALID, [problem])
    check = _Checker(path)
    allowed = _SCHEDULE_KEYS if kind == "schedule" else _EXPONENTIAL_KEYS
    for key in data:
        if key not in allowed:
            check.fail(str(key), f"is not a field of the {kind} policy")

    if kind == "schedule":
        delays, jitter = _read_schedule(
            check, data.get("delays"), data.get("jitter", DEFAULT_JITTER)
        )
        if check.problems:
            raise errors.ValidationError(_INVALID, check.problems)
        return Schedule(delays, jitter)
    default = Exponential()
    initial, factor, max_delay, attempts, jitter = _read_exponential(
        check,
        data.get("initial", default.initial),
        data.get("factor", default.factor),
        data.get("max_delay", default.max_delay),
        data.get("max_attempts", default.max_attempts),
        data.get("jitter", default.jitter),
    )
    if check.problems:
        raise errors.ValidationError(_INVALID, check.problems)
    return Exponential(initial, factor, max_delay, attempts, jitter)


_DELTA_SECONDS = re.compile(r"-?[0-9]{1,15}")  # (negative is out of spec, read as "now")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `now` that a ``Retry-After`` header asks to wait.

    Accepts delta-seconds or an HTTP-date. Returns None when the header is absent or
    unparseable, and 0.0 for a negative delay or a date in the past.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class DecisionKind(StrEnum):
    """What the worker does with a delivery after an attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"  # try again at `next_attempt_at`
    FAILED = "failed"  # the receiver rejected it; not retried
    DEAD = "dead"  # attempts exhausted: a dead letter
    DISABLE = "disable"  # the receiver said 410 Gone: disable the endpoint


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of `decide`; `reason` is a short sentence for logs and the dashboard."""

    kind: DecisionKind
    next_attempt_at: float | None = None
    reason: str = ""


def next_delay(policy: RetryPolicy, attempts_done: int, rand: Callable[[], float]) -> float | None:
    """The jittered wait before attempt ``attempts_done + 1``, or None when none is left.

    Jitter scales the delay by ``1 + jitter * (2 * rand() - 1)``, where `rand` returns a float
    in [0, 1] (e.g. `random.random`).
    """
    if attempts_done < 0:
        raise ValueError(f"attempts_done must be >= 0, not {attempts_done}")
    if attempts_done >= max_attempts(policy):
        return None
    if isinstance(policy, Schedule):
        delay = float(policy.delays[attempts_done])
    elif attempts_done == 0:
        delay = 0.0
    else:
        delay = policy.initial
        for _ in range(attempts_done - 1):  # stepwise, so a large factor cannot overflow
            delay = min(delay * policy.factor, policy.max_delay)
    return delay * (1 + policy.jitter * (2 * rand() - 1))


#: Statuses by which a receiver says it is overloaded, and how much harder hookd then backs off.
_OVERLOADED = frozenset({429, 503})
OVERLOAD_FACTOR = 2.0


def decide(
    policy: RetryPolicy,
    *,
    status: int | None,
    error: ErrorKind | None,
    attempts_done: int,
    now: float,
    retry_after: str | None = None,
    retry_after_max: float = 86400.0,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Decide what follows an attempt; `attempts_done` counts the attempt just made.

    A retry waits the jittered schedule delay, or longer when the receiver's ``Retry-After``
    asks for it; the Retry-After wait is capped at `retry_after_max` seconds, but never
    shortens the schedule. A 429 or 503 without Retry-After waits `OVERLOAD_FACTOR` times the
    schedule's delay (within the same cap): an overloaded receiver gets more room.
    """
    if attempts_done < 1:
        raise ValueError(f"attempts_done must be >= 1 after an attempt, not {attempts_done}")
    outcome = classify(status, error)
    cause = f"receiver answered {status}" if status is not None else f"{error} error"
    if outcome is OutcomeClass.SUCCESS:
        return Decision(DecisionKind.DELIVERED, reason=cause)
    if outcome is OutcomeClass.GONE:
        return Decision(DecisionKind.DISABLE, reason="receiver answered 410 Gone")
    if outcome is OutcomeClass.REJECT:
        if status is None:
            return Decision(DecisionKind.FAILED, reason="destination blocked by the SSRF guard")
        return Decision(DecisionKind.FAILED, reason=f"{cause}; not retrying")

    delay = next_delay(policy, attempts_done, rand)
    if delay is None:
        return Decision(DecisionKind.DEAD, reason=f"gave up after {attempts_done} attempts")
    note = ""
    asked = parse_retry_after(retry_after, now)
    if asked is not None and min(asked, retry_after_max) > delay:
        delay = min(asked, retry_after_max)
        note = ", as its Retry-After asks"
    elif asked is None and status in _OVERLOADED:
        delay = max(delay, min(delay * OVERLOAD_FACTOR, retry_after_max))
        note = ", backing off harder: the receiver is overloaded"
    reason = f"{cause}; retrying in {delay:.0f}s{note}"
    return Decision(DecisionKind.RETRY, next_attempt_at=now + delay, reason=reason)
