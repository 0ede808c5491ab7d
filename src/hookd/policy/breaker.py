"""The per-endpoint circuit breaker, as values: a state, and functions that return the next state.

    closed ──(failure rate > threshold over the window, with at least `min_requests`)──► open
    open ──(cool-down elapsed: the next request asks)──► half-open: exactly one probe goes out
    half-open ──probe succeeds──► closed (window cleared)
    half-open ──probe fails──► open again, with a longer cool-down (doubling, capped)

The window is a ring of fixed buckets (`buckets` of `window / buckets` seconds each), so the state
has a bounded size and serialises to a small JSON object that every worker process shares (the
store keeps it beside the endpoint's token bucket, hookd.policy.admission). While the breaker is
open nothing is sent and nothing is lost: deliveries wait until it lets them through.

What counts: a success is a delivery the receiver took (2xx) or answered for itself (a 4xx that
is not 408 or 429: the receiver is up, it refused the payload); a failure is a 5xx, a 408, a
timeout or a network error. A 429 counts as neither (the adaptive back-off answers it), nor do
attempts at the fallback URL. No I/O here; callers pass `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hookd.domain import errors
from hookd.domain.errors import Problem
from hookd.policy import retry

#: Transitions kept in a breaker's history (newest last), for the API.
HISTORY = 10


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    enabled: bool = True
    window: float = 60.0  # seconds over which the failure rate is measured
    buckets: int = 12  # the window's resolution
    min_requests: int = 20  # no verdict on fewer attempts than this in the window
    failure_rate: float = 0.5  # open when failures / attempts exceeds this
    cooldown: float = 30.0  # first wait before a probe
    max_cooldown: float = 600.0  # repeated failed probes double the wait up to this

    def __post_init__(self) -> None:
        problems = []
        if not 1.0 <= self.window <= 86400.0:
            problems.append(Problem("breaker.window", "must be 1..86400 seconds"))
        if not 1 <= self.buckets <= 120:
            problems.append(Problem("breaker.buckets", "must be 1..120"))
        if not 1 <= self.min_requests <= 100_000:
            problems.append(Problem("breaker.min_requests", "must be 1..100000"))
        if not 0.0 < self.failure_rate <= 1.0:
            problems.append(Problem("breaker.failure_rate", "must be more than 0 and at most 1"))
        if not 0.1 <= self.cooldown <= self.max_cooldown <= 86400.0:
            problems.append(
                Problem("breaker.cooldown", "need 0.1 <= cooldown <= max_cooldown <= 86400")
            )
        if problems:
            raise errors.ValidationError("invalid circuit breaker settings", problems)

    @property
    def bucket_seconds(self) -> float:
        return self.window / self.buckets

    def to_dict(self) -> dict[str, bool | float | int]:
        return {
            "enabled": self.enabled,
            "window": self.window,
            "buckets": self.buckets,
            "min_requests": self.min_requests,
            "failure_rate": self.failure_rate,
            "cooldown": self.cooldown,
            "max_cooldown": self.max_cooldown,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base: BreakerSettings | None = None
    ) -> BreakerSettings:
        """Settings from a JSON object; keys left out keep `base`'s values (the defaults)."""
        known = cls().to_dict()
        unknown = set(data) - set(known)
        if unknown:
            raise errors.ValidationError(
                "invalid circuit breaker settings",
                [Problem(f"breaker.{k}", "is not a breaker setting") for k in sorted(unknown)],
            )
        values: dict[str, Any] = (base or cls()).to_dict()
        problems = []
        for key, default in known.items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    problems.append(Problem(f"breaker.{key}", "must be true or false"))
                else:
                    values[key] = value
            elif isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(Problem(f"breaker.{key}", "must be a number"))
            elif isinstance(default, int) and value != int(value):
                problems.append(Problem(f"breaker.{key}", "must be a whole number"))
            else:
                values[key] = int(value) if isinstance(default, int) else float(value)
        if problems:
            raise errors.ValidationError("invalid circuit breaker settings", problems)
        return cls(**values)


#: One bucket of the window: (bucket index since the epoch, successes, failures).
Bucket = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    from_state: BreakerState
    to_state: BreakerState
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "from": self.from_state.value,
            "to": self.to_state.value,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        return cls(
            at=float(data["at"]),
            from_state=BreakerState(data["from"]),
            to_state=BreakerState(data["to"]),
            reason=str(data["reason"]),
        )


@dataclass(frozen=True, slots=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    buckets: tuple[Bucket, ...] = ()
    #: Open: when the cool-down ends (a probe may go). Half-open: when the probe out is given up
    #: for lost (its worker died) and another may go. Closed: unused (0.0).
    until: float = 0.0
    cooldown: float = 0.0  # the cool-down in force (doubles with each failed probe)
    tripped_at: float | None = None  # when it last left `closed` (kept while open/half-open)
    history: tuple[Transition, ...] = ()

    @property
    def last_change(self) -> float | None:
        return self.history[-1].at if self.history else None

    def counts(self, now: float, settings: BreakerSettings) -> tuple[int, int]:
        """(successes, failures) within the window ending at `now`."""
        oldest = _bucket(now, settings) - settings.buckets + 1
        live = [b for b in self.buckets if b[0] >= oldest]
        return sum(b[1] for b in live), sum(b[2] for b in live)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "buckets": [list(b) for b in self.buckets],
            "until": self.until,
            "cooldown": self.cooldown,
            "tripped_at": self.tripped_at,
            "history": [t.to_dict() for t in self.history],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Breaker:
        return cls(
            state=BreakerState(data.get("state", "closed")),
            buckets=tuple((int(b[0]), int(b[1]), int(b[2])) for b in data.get("buckets", ())),
            until=float(data.get("until", 0.0)),
            cooldown=float(data.get("cooldown", 0.0)),
            tripped_at=data.get("tripped_at"),
            history=tuple(Transition.from_dict(t) for t in data.get("history", ())),
        )

    def _moved(self, to: BreakerState, now: float, reason: str, **changes: Any) -> Breaker:
        step = Transition(now, self.state, to, reason)
        return replace(self, state=to, history=(*self.history, step)[-HISTORY:], **changes)


def verdict(status: int | None, error: retry.ErrorKind | None) -> bool | None:
    """What an attempt tells the breaker (see the module docstring): True, the receiver is
    answering; False, it is failing; None, nothing (a 429, a 410, an address we refused)."""
    if status is None:
        return None if error is retry.ErrorKind.BLOCKED else False
    if status in (429, 410):
        return None
    return retry.classify(status, error) is not retry.OutcomeClass.RETRY


def _bucket(now: float, settings: BreakerSettings) -> int:
    return int(now // settings.bucket_seconds)


def allow(breaker: Breaker, now: float, settings: BreakerSettings) -> tuple[bool, Breaker]:
    """May a request be sent now? Returns the verdict and the (possibly changed) breaker.

    Closed: yes. Open: no, until the cool-down has passed; then the breaker turns half-open and
    this caller's request is the probe. Half-open: no while the probe is out — unless the probe
    has been out longer than a cool-down (its worker died), when a new probe may go.
    A disabled breaker always says yes.
    """
    if breaker.state is BreakerState.CLOSED or not settings.enabled:
        return True, breaker
    if now < breaker.until:
        return False, breaker
    probe_until = now + max(breaker.cooldown, settings.cooldown)
    if breaker.state is BreakerState.OPEN:
        return True, breaker._moved(
            BreakerState.HALF_OPEN, now, "cool-down over: one probe", until=probe_until
        )
    return True, replace(breaker, until=probe_until)  # the last probe was lost: another one


def reset(breaker: Breaker, now: float, reason: str) -> Breaker:
    """Closed, with a clean window (an operator's doing, or the breaker turned off)."""
    if breaker.state is BreakerState.CLOSED:
        return breaker
    step = Transition(now, breaker.state, BreakerState.CLOSED, reason)
    return Breaker(history=(*breaker.history, step)[-HISTORY:])


def record(breaker: Breaker, success: bool, now: float, settings: BreakerSettings) -> Breaker:
    """The breaker after one attempt's outcome (`success`: the receiver is answering)."""
    if breaker.state is BreakerState.HALF_OPEN:
        if success:
            return reset(breaker, now, "the probe succeeded")
        cooldown = min(max(breaker.cooldown, settings.cooldown) * 2, settings.max_cooldown)
        return breaker._moved(
            BreakerState.OPEN,
            now,
            f"the probe failed: next probe in {cooldown:g} s",
            until=now + cooldown,
            cooldown=cooldown,
        )
    if breaker.state is BreakerState.OPEN:
        return breaker  # a straggler that was in flight when it opened: no new verdict
    buckets = _add(breaker.buckets, now, success, settings)
    updated = replace(breaker, buckets=buckets)
    successes, failures = updated.counts(now, settings)
    total = successes + failures
    if not success and total >= settings.min_requests and failures / total > settings.failure_rate:
        return updated._moved(
            BreakerState.OPEN,
            now,
            f"{failures} of {total} attempts failed in {settings.window:g} s",
            until=now + settings.cooldown,
            cooldown=settings.cooldown,
            tripped_at=now,
        )
    return updated


def record_successes(
    breaker: Breaker, count: int, now: float, settings: BreakerSettings
) -> Breaker:
    """`record(breaker, True, now, settings)` `count` times, in one step (a batch's successes:
    no success can open a breaker, so they need no verdict one by one)."""
    if count <= 0:
        return breaker
    if breaker.state is not BreakerState.CLOSED:
        breaker = record(breaker, True, now, settings)  # open: unchanged; half-open: closed
        count -= 1
        if breaker.state is not BreakerState.CLOSED or not count:
            return breaker
    return replace(breaker, buckets=_add(breaker.buckets, now, True, settings, count))


def _add(
    buckets: tuple[Bucket, ...],
    now: float,
    success: bool,
    settings: BreakerSettings,
    count: int = 1,
) -> tuple[Bucket, ...]:
    current = _bucket(now, settings)
    oldest = current - settings.buckets + 1
    kept = [b for b in buckets if b[0] >= oldest]
    ok, bad = (count, 0) if success else (0, count)
    if kept and kept[-1][0] == current:
        index, ok_before, bad_before = kept[-1]
        kept[-1] = (index, ok_before + ok, bad_before + bad)
    else:
        kept.append((current, ok, bad))
    return tuple(kept)
