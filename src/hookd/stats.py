"""Delivery stats over a time window, from the counts and the attempt sample the store gives.

Pure: `summarize` turns `DeliveryCount` rows and an `AttemptSample` into a `Stats` value; the
engine does the I/O. Definitions, shared by `GET /v1/stats` and `GET /v1/endpoints/{id}/stats`:

- deliveries are those created in the window, counted by their status now;
- success rate = delivered / (delivered + failed + dead), over those that have ended (None when
  none has): pending, sending and parked deliveries have not been decided yet;
- latency is over the attempts started in the window: the mean over all of them, percentiles
  (linear interpolation between closest ranks) over the most recent `SAMPLE` of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hookd.domain.models import DeliveryStatus
from hookd.store.port import AttemptSample, DeliveryCount

#: How many of the latest attempts the percentiles are computed over.
SAMPLE = 10_000
#: The longest window stats may cover.
MAX_WINDOW = 90 * 86400.0
#: The most endpoints or event types listed.
MAX_TOP = 100

_ENDED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DEAD)


@dataclass(frozen=True, slots=True)
class Latency:
    """Attempt durations in milliseconds; every figure is None when no attempt was made."""

    attempts: int  # attempts started in the window
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    sampled: int  # how many attempts the percentiles are computed over


@dataclass(frozen=True, slots=True)
class Group:
    """Deliveries of one endpoint or one event type."""

    key: str
    total: int
    by_status: dict[DeliveryStatus, int]
    success_rate: float | None


@dataclass(frozen=True, slots=True)
class Stats:
    since: float
    until: float
    total: int
    by_status: dict[DeliveryStatus, int]  # every status, zeros included
    success_rate: float | None
    latency: Latency
    by_event_type: list[Group]  # the busiest first, at most `top`
    by_endpoint: list[Group]  # the busiest first, at most `top`


def summarize(
    counts: Iterable[DeliveryCount],
    sample: AttemptSample,
    *,
    since: float,
    until: float,
    top: int,
) -> Stats:
    overall = _zeros()
    by_type: dict[str, dict[DeliveryStatus, int]] = {}
    by_endpoint: dict[str, dict[DeliveryStatus, int]] = {}
    for row in counts:
        overall[row.status] += row.count
        by_type.setdefault(row.event_type, _zeros())[row.status] += row.count
        by_endpoint.setdefault(row.endpoint_id, _zeros())[row.status] += row.count
    return Stats(
        since=since,
        until=until,
        total=sum(overall.values()),
        by_status=overall,
        success_rate=success_rate(overall),
        latency=latency(sample),
        by_event_type=_busiest(by_type, top),
        by_endpoint=_busiest(by_endpoint, top),
    )


def success_rate(by_status: dict[DeliveryStatus, int]) -> float | None:
    ended = sum(by_status.get(s, 0) for s in _ENDED)
    if not ended:
        return None
    return by_status.get(DeliveryStatus.DELIVERED, 0) / ended


def latency(sample: AttemptSample) -> Latency:
    values = sorted(sample.durations_ms)
    return Latency(
        attempts=sample.count,
        mean=sample.total_ms / sample.count if sample.count else None,
        p50=percentile(values, 0.50),
        p95=percentile(values, 0.95),
        p99=percentile(values, 0.99),
        sampled=len(values),
    )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The `q` quantile (0..1) of ascending `ordered`, interpolating between closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def _zeros() -> dict[DeliveryStatus, int]:
    return dict.fromkeys(DeliveryStatus, 0)


def _busiest(groups: dict[str, dict[DeliveryStatus, int]], top: int) -> list[Group]:
    made = [
        Group(key, sum(counts.values()), counts, success_rate(counts))
        for key, counts in groups.items()
    ]
    made.sort(key=lambda g: (-g.total, g.key))
    return made[:top]
