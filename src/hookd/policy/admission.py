"""Whether a worker may send to an endpoint now: one decision over the state every worker process
shares for that endpoint (its `Gate`: the token bucket, the back-off a receiver asked for, the
circuit breaker). Pure: the stores load the gates of a claim batch's endpoints under a lock, call
`admit` for each, and save what it returns, in one transaction.

    backing off (a 429/503, Retry-After)      → nothing is granted, no token taken
    breaker open, cool-down not over          → nothing is granted
    breaker open, cool-down over              → one delivery (the probe) if the bucket has a token
    otherwise                                 → up to `wanted`, as the token bucket allows

`settle` applies attempt outcomes to the breaker (hookd.policy.breaker.record).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from hookd.domain.models import AttemptResult, EndpointRateLimit
from hookd.policy import breaker as breakers
from hookd.policy import ratelimit
from hookd.policy.breaker import Breaker, BreakerSettings, BreakerState, Transition


@dataclass(frozen=True, slots=True)
class Gate:
    """One endpoint's shared sending state (a row of `endpoint_throttle`)."""

    tokens: float | None = None  # None: a new bucket, full
    updated_at: float = 0.0  # when `tokens` was counted
    backoff_until: float = 0.0  # nothing is sent before this
    breaker: Breaker = field(default_factory=Breaker)


@dataclass(frozen=True, slots=True)
class ThrottleRequest:
    endpoint_id: str
    wanted: int  # tokens (deliveries to send now)
    rate_limit: EndpointRateLimit | None  # None: no bucket, all that is wanted is granted
    breaker: BreakerSettings | None = None  # None: no circuit breaker


@dataclass(frozen=True, slots=True)
class ThrottleGrant:
    granted: int  # deliveries that may be sent now
    tokens: float  # left in the bucket afterwards (0.0 without a rate limit)
    backoff_until: float  # nothing is sent before this (0.0: no back-off)
    breaker: BreakerState = BreakerState.CLOSED  # the breaker's state after this grant
    breaker_until: float = 0.0  # open / half-open: when a probe may go next
    tripped_at: float | None = None  # when the breaker last left `closed`
    probe: bool = False  # the one delivery granted is the half-open breaker's probe
    transition: Transition | None = None  # the breaker's change in this grant (to half-open)


def tokens_at(gate: Gate, rate: EndpointRateLimit | None, now: float) -> float | None:
    """The tokens in the gate's bucket at `now` (None without a rate limit)."""
    if rate is None:
        return None
    held = float(rate.burst) if gate.tokens is None else gate.tokens
    return ratelimit.refill(held, gate.updated_at, now, rate.per_second, rate.burst)


def admit(gate: Gate, request: ThrottleRequest, now: float) -> tuple[Gate, ThrottleGrant]:
    """What `request` is granted from `gate` at `now`, and the gate afterwards."""
    rate = request.rate_limit
    tokens = tokens_at(gate, rate, now) or 0.0
    wanted = max(request.wanted, 0)
    breaker = gate.breaker
    probe = False
    transition: Transition | None = None
    if request.breaker is None and breaker.state is not BreakerState.CLOSED:
        breaker = breakers.reset(breaker, now, "the circuit breaker was turned off")
        transition = breaker.history[-1]
    if gate.backoff_until > now:
        wanted = 0
    elif request.breaker is not None and breaker.state is not BreakerState.CLOSED:
        allowed, opened = breakers.allow(breaker, now, request.breaker)
        if not allowed:
            wanted = 0
        elif wanted and (rate is None or tokens >= 1.0):
            if opened.state is not breaker.state:
                transition = opened.history[-1]
            breaker, wanted, probe = opened, 1, True
        else:
            wanted = 0  # no delivery (or no token) to probe with: the probe waits
    granted = wanted if rate is None else min(wanted, int(tokens))
    after = Gate(
        tokens=None if rate is None else tokens - granted,
        updated_at=gate.updated_at if rate is None else max(now, gate.updated_at),
        backoff_until=gate.backoff_until,
        breaker=breaker,
    )
    return after, ThrottleGrant(
        granted=granted,
        tokens=0.0 if rate is None else tokens - granted,
        backoff_until=gate.backoff_until,
        breaker=breaker.state,
        breaker_until=breaker.until,
        tripped_at=breaker.tripped_at,
        probe=probe,
        transition=transition,
    )


def admit_unlocked(
    seen: Mapping[str, Gate], requests: Iterable[ThrottleRequest], now: float
) -> tuple[dict[str, ThrottleGrant], list[ThrottleRequest]]:
    """What can be granted from gates read without a lock (`seen`, by endpoint id): an endpoint
    with no rate limit and a closed breaker gets all it wants, and nothing about its gate needs
    writing back (a breaker opening meanwhile is no different from one opening just after).
    Returns those grants, and the requests to decide on under the gates' lock (`admit`)."""
    grants: dict[str, ThrottleGrant] = {}
    locked: list[ThrottleRequest] = []
    for request in requests:
        gate = seen.get(request.endpoint_id)
        if request.rate_limit is None and (
            gate is None or gate.breaker.state is BreakerState.CLOSED
        ):
            grants[request.endpoint_id] = admit(gate or Gate(updated_at=now), request, now)[1]
        else:
            locked.append(request)
    return grants, locked


def back_off(gate: Gate, until: float) -> Gate:
    """Send nothing before `until` (a back-off already set is never shortened)."""
    return replace(gate, backoff_until=max(gate.backoff_until, until))


@dataclass(frozen=True, slots=True)
class BreakerOutcome:
    """One attempt's verdict for its endpoint's breaker (see hookd.policy.breaker)."""

    endpoint_id: str
    success: bool
    settings: BreakerSettings


@dataclass(frozen=True, slots=True)
class BreakerChange:
    endpoint_id: str
    transition: Transition


def settle(
    gate: Gate, outcomes: Iterable[BreakerOutcome], now: float
) -> tuple[Gate, list[BreakerChange]]:
    """The gate after these attempt outcomes (in order), and the breaker's transitions."""
    breaker = gate.breaker
    changes = []
    # runs of successes under the same settings go in one step (the common case: a batch of
    # deliveries that all went through)
    for (endpoint_id, success, settings), run in itertools.groupby(
        outcomes, key=lambda o: (o.endpoint_id, o.success, o.settings)
    ):
        before = breaker
        if success:
            breaker = breakers.record_successes(breaker, len(list(run)), now, settings)
            steps = [breaker]
        else:
            steps = []
            for _ in run:
                breaker = breakers.record(breaker, False, now, settings)
                steps.append(breaker)
        for step in steps:
            if step.state is not before.state and step.history:
                changes.append(BreakerChange(endpoint_id, step.history[-1]))
            before = step
    return replace(gate, breaker=breaker), changes


def probe_closed(changes: Iterable[BreakerChange]) -> bool:
    """Whether a probe closed the breaker among `changes`: what waited for it may go now."""
    return any(
        c.transition.from_state is BreakerState.HALF_OPEN
        and c.transition.to_state is BreakerState.CLOSED
        for c in changes
    )


def breaker_outcomes(results: Iterable[AttemptResult]) -> dict[str, list[BreakerOutcome]]:
    """The results that speak to their endpoint's breaker, grouped by endpoint (in order)."""
    grouped: dict[str, list[BreakerOutcome]] = {}
    for result in results:
        if result.breaker_success is not None and result.breaker_settings is not None:
            endpoint_id = result.attempt.endpoint_id
            grouped.setdefault(endpoint_id, []).append(
                BreakerOutcome(endpoint_id, result.breaker_success, result.breaker_settings)
            )
    return grouped
