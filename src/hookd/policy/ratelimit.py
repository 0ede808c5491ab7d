"""Token buckets and receiver back-pressure, as values: no I/O, no sleeping; callers pass `now`.

One implementation of the bucket arithmetic serves the API's per-key and per-IP limits
(`TokenBuckets`, held in one process's memory) and the worker's per-endpoint delivery limits
(`grant`, whose state lives in the database's `endpoint_throttle` table so that every worker
process draws on the same bucket; the stores run the same arithmetic in one SQL statement).

    tokens(now) = min(burst, tokens(then) + rate * (now - then))

A grant takes up to `wanted` whole tokens at once (a claim batch's worth), so a worker asks the
shared bucket once per batch, not once per delivery. What was not granted waits until the
bucket will have a token for it (`wait_for`).

`backoff_until` turns a receiver's 429 or 503 (and its Retry-After) into a time before which
nothing more is sent to that endpoint.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from hookd.config import RateLimit
from hookd.policy import retry

#: Statuses by which a receiver says "slow down".
OVERLOADED = frozenset({429, 503})
#: How long to back off after a 429 or 503 without Retry-After (seconds).
DEFAULT_BACKOFF = 1.0


def refill(tokens: float, updated_at: float, now: float, rate: float, burst: float) -> float:
    """The bucket's tokens at `now` (a clock that went backwards refills nothing)."""
    return min(float(burst), tokens + rate * max(now - updated_at, 0.0))


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int  # whole tokens taken
    tokens: float  # left in the bucket afterwards


def grant(
    tokens: float, updated_at: float, now: float, rate: float, burst: float, wanted: int
) -> Grant:
    """Take up to `wanted` whole tokens from the bucket."""
    available = refill(tokens, updated_at, now, rate, burst)
    granted = max(0, min(wanted, math.floor(available)))
    return Grant(granted=granted, tokens=available - granted)


def wait_for(tokens: float, rate: float, needed: float = 1.0) -> float:
    """Seconds until a bucket holding `tokens` has `needed` of them (0.0 if it has them now)."""
    return max(needed - tokens, 0.0) / rate


def backoff_until(
    status: int | None,
    retry_after: str | None,
    now: float,
    *,
    default: float = DEFAULT_BACKOFF,
    limit: float = 3600.0,
) -> float | None:
    """Until when an endpoint that answered `status` is left alone: a 429 or 503 backs it off
    for its Retry-After (bounded by `limit`) or `default` seconds; other answers: None."""
    if status not in OVERLOADED:
        return None
    asked = retry.parse_retry_after(retry_after, now)
    return now + min(default if asked is None else asked, limit)


# in-process buckets (the API) -------------------------------------------------------------------
HEADER_LIMIT = "X-RateLimit-Limit"
HEADER_REMAINING = "X-RateLimit-Remaining"
HEADER_RESET = "X-RateLimit-Reset"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One bucket's answer to one request."""

    allowed: bool
    limit: int  # the bucket's size
    remaining: int  # whole tokens left after this request
    reset: float  # seconds until the bucket is full again
    retry_after: float  # seconds until one token is back (0.0 when allowed)

    def headers(self) -> dict[str, str]:
        """The answer as HTTP response headers (see hookd.api.ratelimit)."""
        headers = {
            HEADER_LIMIT: str(self.limit),
            HEADER_REMAINING: str(self.remaining),
            HEADER_RESET: str(math.ceil(self.reset)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class TokenBuckets:
    """One token bucket per key, refilled continuously; the least recently used are forgotten
    beyond `max_keys` (a forgotten bucket is as good as full). Pure: time comes from `clock`."""

    def __init__(
        self,
        rate: RateLimit,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        # key -> [tokens, when they were counted]; most recently used last
        self._buckets: collections.OrderedDict[Hashable, list[float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> Verdict:
        """Take one token from `key`'s bucket if it has one."""
        now = self._clock()
        size = float(self.rate.burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [size, now]
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        result = grant(bucket[0], bucket[1], now, self.rate.per_second, size, 1)
        bucket[0], bucket[1] = result.tokens, now
        allowed = result.granted == 1
        return Verdict(
            allowed=allowed,
            limit=self.rate.burst,
            remaining=math.floor(result.tokens),
            reset=(size - result.tokens) / self.rate.per_second,
            retry_after=0.0 if allowed else wait_for(result.tokens, self.rate.per_second),
        )
