"""Delivery counters: what the worker and the publisher did, in plain integers.

The engine feeds them (`event_published`, and `attempt_finished` and `breaker_changed` as the
worker's observers);
`hookd.api.metrics` shows them as Prometheus metrics. Nothing here knows about Prometheus, and
the hot path (`attempt_finished`, once per attempt) is a dict lookup, a bisect and a few integer
additions: no lock (everything runs on the event loop), no allocation once an endpoint is known.

Per-endpoint series are capped: the first `endpoint_cap` endpoints seen get their own row, the
rest share the row `OTHER`, so a tenant creating many endpoints cannot grow memory or a
scrape without bound.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping
from typing import Any

from hookd.domain.models import AttemptResult, DeliveryStatus
from hookd.policy.admission import BreakerChange
from hookd.policy.breaker import BreakerState

#: What an attempt led to, in the order of a row of counts.
OUTCOMES = ("delivered", "retry", "failed", "dead", "parked")
_OUTCOME_INDEX = {
    DeliveryStatus.DELIVERED: 0,
    DeliveryStatus.PENDING: 1,  # a retry is scheduled
    DeliveryStatus.FAILED: 2,
    DeliveryStatus.DEAD: 3,
    DeliveryStatus.PARKED: 4,  # the endpoint is paused or disabled (e.g. 410 Gone)
}

#: Upper bounds (seconds) of the attempt latency histogram's buckets; +Inf is implied.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The label of the row that endpoints past the cap share.
OTHER = "other"


class DeliveryCounters:
    def __init__(self, *, endpoint_cap: int = 100) -> None:
        self.endpoint_cap = endpoint_cap
        self.published = 0
        self._rows: dict[str, list[int]] = {}
        self._other = [0] * len(OUTCOMES)
        # non-cumulative bucket counts; the last one is +Inf
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        #: circuit-breaker transitions by the state they led to
        self.breaker_transitions = dict.fromkeys((s.value for s in BreakerState), 0)

    def event_published(self, count: int = 1) -> None:
        self.published += count

    def attempt_finished(self, result: AttemptResult) -> None:
        """The worker's observer: called once per attempt, on the event loop."""
        endpoint_id = result.attempt.endpoint_id
        row = self._rows.get(endpoint_id)
        if row is None:
            if len(self._rows) < self.endpoint_cap:
                row = self._rows[endpoint_id] = [0] * len(OUTCOMES)
            else:
                row = self._other
        row[_OUTCOME_INDEX[result.status]] += 1
        seconds = result.attempt.duration_ms / 1000.0
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def breaker_changed(self, change: BreakerChange) -> None:
        """The worker's observer of circuit-breaker transitions (on the event loop)."""
        self.breaker_transitions[change.transition.to_state.value] += 1

    # other processes' counts (hookd.delivery.processes) -----------------------------------------
    def take(self) -> dict[str, Any] | None:
        """What was counted since the last `take`, as plain JSON-able data (None: nothing),
        starting again from zero: a worker process sends it to the process that serves
        /metrics, which `merge`s it."""
        rows = {e: row for e, row in self._rows.items() if any(row)}
        if any(self._other):
            rows[OTHER] = self._other
        transitions = {s: n for s, n in self.breaker_transitions.items() if n}
        if not (rows or transitions or self.published):
            return None
        counts: dict[str, Any] = {
            "published": self.published,
            "rows": rows,
            "buckets": self._buckets,
            "latency_sum": self._latency_sum,
            "breaker_transitions": transitions,
        }
        self.published = 0
        self._rows = {}
        self._other = [0] * len(OUTCOMES)
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self.breaker_transitions = dict.fromkeys((s.value for s in BreakerState), 0)
        return counts

    def merge(self, counts: Mapping[str, Any]) -> int:
        """Add what another process's `take` returned; the number of attempts it held.
        Malformed input raises ValueError (or TypeError) before anything is added."""
        rows = {str(e): _counts(row, len(OUTCOMES)) for e, row in dict(counts["rows"]).items()}
        buckets = _counts(counts["buckets"], len(self._buckets))
        latency_sum = float(counts["latency_sum"])
        published = int(counts["published"])
        transitions = {str(s): int(n) for s, n in dict(counts["breaker_transitions"]).items()}
        if not set(transitions) <= set(self.breaker_transitions):
            raise ValueError(f"unknown breaker states: {sorted(transitions)}")
        attempts = 0
        for endpoint_id, added in rows.items():
            row = self._other if endpoint_id == OTHER else self._rows.get(endpoint_id)
            if row is None:
                if len(self._rows) < self.endpoint_cap:
                    row = self._rows[endpoint_id] = [0] * len(OUTCOMES)
                else:
                    row = self._other
            for i, n in enumerate(added):
                row[i] += n
            attempts += sum(added)
        for i, n in enumerate(buckets):
            self._buckets[i] += n
        self._latency_sum += latency_sum
        self.published += published
        for state, n in transitions.items():
            self.breaker_transitions[state] += n
        return attempts

    # reading -----------------------------------------------------------------------------------
    def by_endpoint(self) -> Iterator[tuple[str, str, int]]:
        """(endpoint label, outcome, count) for every count, `OTHER` last when it is used."""
        rows = list(self._rows.items())
        if any(self._other):
            rows.append((OTHER, self._other))
        for endpoint_id, row in rows:
            for outcome, count in zip(OUTCOMES, row, strict=True):
                yield endpoint_id, outcome, count

    def totals(self) -> dict[str, int]:
        """Attempts by outcome, over every endpoint."""
        totals = dict.fromkeys(OUTCOMES, 0)
        for _, outcome, count in self.by_endpoint():
            totals[outcome] += count
        return totals

    def latency(self) -> tuple[list[tuple[float, int]], float]:
        """Cumulative (upper bound, count) pairs ending with +Inf, and the sum in seconds."""
        cumulative = []
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), self._buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, self._latency_sum


def _counts(value: Any, length: int) -> list[int]:
    counts = [int(n) for n in value]
    if len(counts) != length or any(n < 0 for n in counts):
        raise ValueError(f"expected {length} counts, not {value!r}")
    return counts
