"""hookd.policy.admission: one endpoint's shared gate (bucket, back-off, breaker), pure."""

from __future__ import annotations

from hookd.domain.models import EndpointRateLimit
from hookd.policy.admission import (
    BreakerOutcome,
    Gate,
    ThrottleRequest,
    admit,
    admit_unlocked,
    back_off,
    breaker_outcomes,
    probe_closed,
    settle,
)
from hookd.policy.breaker import Breaker, BreakerSettings, BreakerState

S = BreakerSettings(window=60, buckets=6, min_requests=4, failure_rate=0.5, cooldown=10)
LIMIT = EndpointRateLimit(per_second=2.0, burst=4)


def tripped(now: float = 1000.0) -> Gate:
    gate, changes = settle(Gate(), [BreakerOutcome("ep", False, S)] * 4, now)
    assert gate.breaker.state is BreakerState.OPEN
    assert [c.transition.to_state for c in changes] == [BreakerState.OPEN]
    return gate


def test_without_limits_everything_wanted_is_granted_and_nothing_changes() -> None:
    gate = Gate(updated_at=5.0)
    after, grant = admit(gate, ThrottleRequest("ep", 300, None, S), now=10.0)
    assert grant.granted == 300
    assert after == gate  # no write needed


def test_unlocked_grants_only_where_no_rate_limit_and_no_open_breaker() -> None:
    """Read without a lock: an endpoint with no rate limit and a closed (or no) breaker is
    granted all it wants; a rate limit or a tripped breaker is left to `admit` under the lock."""
    requests = [
        ThrottleRequest("free", 30, None, S),
        ThrottleRequest("new", 7, None, S),  # no gate yet: a closed breaker
        ThrottleRequest("limited", 30, LIMIT, S),
        ThrottleRequest("tripped", 30, None, S),
    ]
    seen = {"free": Gate(updated_at=5.0), "limited": Gate(), "tripped": tripped(now=1000.0)}
    grants, locked = admit_unlocked(seen, requests, now=1001.0)
    assert {e: g.granted for e, g in grants.items()} == {"free": 30, "new": 7}
    assert [r.endpoint_id for r in locked] == ["limited", "tripped"]


def test_a_new_bucket_starts_full_and_refills_at_its_rate() -> None:
    gate, grant = admit(Gate(updated_at=0.0), ThrottleRequest("ep", 10, LIMIT), now=100.0)
    assert (grant.granted, grant.tokens) == (4, 0.0)
    gate, grant = admit(gate, ThrottleRequest("ep", 10, LIMIT), now=100.5)
    assert (grant.granted, grant.tokens) == (1, 0.0)


def test_back_off_grants_nothing_and_is_never_shortened() -> None:
    gate = back_off(Gate(updated_at=0.0), 50.0)
    assert back_off(gate, 20.0).backoff_until == 50.0
    _, grant = admit(gate, ThrottleRequest("ep", 3, None), now=49.0)
    assert (grant.granted, grant.backoff_until) == (0, 50.0)
    _, grant = admit(gate, ThrottleRequest("ep", 3, None), now=50.0)
    assert grant.granted == 3


def test_an_open_breaker_grants_nothing_then_exactly_one_probe() -> None:
    gate = tripped(now=1000.0)
    _, grant = admit(gate, ThrottleRequest("ep", 50, None, S), now=1009.0)
    assert (grant.granted, grant.breaker, grant.breaker_until) == (0, BreakerState.OPEN, 1010.0)
    gate, grant = admit(gate, ThrottleRequest("ep", 50, None, S), now=1010.0)
    assert grant.granted == 1 and grant.probe
    assert grant.transition is not None and grant.transition.to_state is BreakerState.HALF_OPEN
    assert grant.tripped_at == 1000.0
    _, again = admit(gate, ThrottleRequest("ep", 50, None, S), now=1011.0)
    assert again.granted == 0 and not again.probe  # one probe at a time, across processes


def test_no_probe_without_a_token_or_a_delivery() -> None:
    gate = tripped()
    empty = Gate(tokens=0.0, updated_at=1010.0, breaker=gate.breaker)
    after, grant = admit(empty, ThrottleRequest("ep", 5, LIMIT, S), now=1010.0)
    assert grant.granted == 0 and after.breaker.state is BreakerState.OPEN
    after, grant = admit(gate, ThrottleRequest("ep", 0, None, S), now=1010.0)
    assert grant.granted == 0 and after.breaker.state is BreakerState.OPEN


def test_the_probe_decides() -> None:
    gate, _ = admit(tripped(), ThrottleRequest("ep", 5, None, S), now=1010.0)
    closed, changes = settle(gate, [BreakerOutcome("ep", True, S)], 1011.0)
    assert closed.breaker.state is BreakerState.CLOSED
    assert probe_closed(changes)
    reopened, changes = settle(gate, [BreakerOutcome("ep", False, S)], 1011.0)
    assert reopened.breaker.state is BreakerState.OPEN
    assert reopened.breaker.until == 1011.0 + 20.0  # the cool-down doubled
    assert not probe_closed(changes)


def test_turning_the_breaker_off_closes_it() -> None:
    gate, grant = admit(tripped(), ThrottleRequest("ep", 7, None, None), now=1001.0)
    assert grant.granted == 7
    assert gate.breaker.state is BreakerState.CLOSED
    assert grant.transition is not None and grant.transition.to_state is BreakerState.CLOSED


def test_outcomes_are_grouped_per_endpoint_and_only_those_that_count() -> None:
    from hookd.domain.models import Attempt, AttemptResult, DeliveryStatus

    def result(
        endpoint: str, success: bool | None, settings: BreakerSettings | None
    ) -> AttemptResult:
        attempt = Attempt("att", "dlv", endpoint, 1, 0.0, 1.0, "success")
        return AttemptResult(
            attempt,
            DeliveryStatus.DELIVERED,
            None,
            breaker_success=success,
            breaker_settings=settings,
        )

    grouped = breaker_outcomes(
        [result("a", True, S), result("b", None, S), result("a", False, S), result("c", True, None)]
    )
    assert grouped == {"a": [BreakerOutcome("a", True, S), BreakerOutcome("a", False, S)]}
    assert Breaker() == Gate().breaker
