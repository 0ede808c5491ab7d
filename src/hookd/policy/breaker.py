"""The per-endpoint circuit breaker, as values: a state, and functions that return the next state.

    closed ──(failure rate > threshold over the window, with at least `min_requests`)──► open
    open ──(cool-down elapsed)──► half-open: exactly one probe is let through
    half-open ──probe succeeds──► closed (window cleared)
    half-open ──probe fails──► open again, with a longer cool-down (doubling, capped)

The window is a ring of fixed buckets (`buckets` of `window / buckets` seconds each), so the state
has a bounded size and serialises to a small JSON object that every worker process can share.
While the breaker is open nothing is sent and nothing is lost: deliveries simply wait.
No I/O here; callers pass `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hookd.domain import errors
from hookd.domain.errors import Problem


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
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

    def to_dict(self) -> dict[str, float | int]:
        return {
            "window": self.window,
            "buckets": self.buckets,
            "min_requests": self.min_requests,
            "failure_rate": self.failure_rate,
            "cooldown": self.cooldown,
            "max_cooldown": self.max_cooldown,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakerSettings:
        unknown = set(data) - set(cls().to_dict())
        if unknown:
            raise errors.ValidationError(
                "invalid circuit breaker settings",
                [Problem(f"breaker.{k}", "is not a breaker setting") for k in sorted(unknown)],
            )
        values: dict[str, Any] = {}
        problems = []
        for key, default in cls().to_dict().items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(Problem(f"breaker.{key}", "must be a number"))
            else:
                values[key] = int(value) if isinstance(default, int) else float(value)
        if problems:
            raise errors.ValidationError("invalid circuit breaker settings", problems)
        return cls(**values)


#: One bucket of the window: (bucket index since the epoch, successes, failures).
Bucket = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    buckets: tuple[Bucket, ...] = ()
    opened_at: float | None = None
    cooldown: float = 0.0  # the wait in force since `opened_at`
    probe_started_at: float | None = None  # set while the half-open probe is out
    last_change: float | None = None

    def counts(self, now: float, settings: BreakerSettings) -> tuple[int, int]:
        """(successes, failures) within the window ending at `now`."""
        oldest = _bucket(now, settings) - settings.buckets + 1
        live = [b for b in self.buckets if b[0] >= oldest]
        return sum(b[1] for b in live), sum(b[2] for b in live)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "buckets": [list(b) for b in self.buckets],
            "opened_at": self.opened_at,
            "cooldown": self.cooldown,
            "probe_started_at": self.probe_started_at,
            "last_change": self.last_change,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Breaker:
        return cls(
            state=BreakerState(data.get("state", "closed")),
            buckets=tuple((int(b[0]), int(b[1]), int(b[2])) for b in data.get("buckets", ())),
            opened_at=data.get("opened_at"),
            cooldown=float(data.get("cooldown", 0.0)),
            probe_started_at=data.get("probe_started_at"),
            last_change=data.get("last_change"),
        )


def _bucket(now: float, settings: BreakerSettings) -> int:
    return int(now // settings.bucket_seconds)


def allow(breaker: Breaker, now: float, settings: BreakerSettings) -> tuple[bool, Breaker]:
    """May a request be sent now? Returns the verdict and the (possibly changed) breaker.

    Closed: yes. Open: no, until the cool-down has passed; then the breaker turns half-open and
    this caller's request is the probe. Half-open: no while the probe is out — unless the probe
    has been out longer than a cool-down (its worker died), when a new probe may go.
    """
    if breaker.state is BreakerState.CLOSED:
        return True, breaker
    if breaker.state is BreakerState.OPEN:
        assert breaker.opened_at is not None
        if now < breaker.opened_at + breaker.cooldown:
            return False, breaker
        return True, replace(
            breaker, state=BreakerState.HALF_OPEN, probe_started_at=now, last_change=now
        )
    stale = breaker.probe_started_at is None or now >= breaker.probe_started_at + max(
        breaker.cooldown, settings.cooldown
    )
    if stale:
        return True, replace(breaker, probe_started_at=now)
    return False, breaker


def record(breaker: Breaker, success: bool, now: float, settings: BreakerSettings) -> Breaker:
    """The breaker after one attempt's outcome (`success`: the receiver took it)."""
    if breaker.state is BreakerState.HALF_OPEN:
        if success:
            return Breaker(state=BreakerState.CLOSED, last_change=now)
        cooldown = min(max(breaker.cooldown, settings.cooldown) * 2, settings.max_cooldown)
        return Breaker(
            state=BreakerState.OPEN,
            buckets=breaker.buckets,
            opened_at=now,
            cooldown=cooldown,
            last_change=now,
        )
    if breaker.state is BreakerState.OPEN:
        return breaker  # a straggler that was in flight when it opened: no new verdict
    buckets = _add(breaker.buckets, now, success, settings)
    updated = replace(breaker, buckets=buckets)
    successes, failures = updated.counts(now, settings)
    total = successes + failures
    if not success and total >= settings.min_requests and failures / total > settings.failure_rate:
        return Breaker(
            state=BreakerState.OPEN,
            buckets=buckets,
            opened_at=now,
            cooldown=settings.cooldown,
            last_change=now,
        )
    return updated


def _add(
    buckets: tuple[Bucket, ...], now: float, success: bool, settings: BreakerSettings
) -> tuple[Bucket, ...]:
    current = _bucket(now, settings)
    oldest = current - settings.buckets + 1
    kept = [b for b in buckets if b[0] >= oldest]
    if kept and kept[-1][0] == current:
        index, ok, bad = kept[-1]
        kept[-1] = (index, ok + success, bad + (not success))
    else:
        kept.append((current, int(success), int(not success)))
    return tuple(kept)
