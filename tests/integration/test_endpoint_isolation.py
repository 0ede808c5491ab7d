"""Per-endpoint isolation (issue 5): concurrency limits, rate limits and back-off, against real
receivers on 127.0.0.1, on both databases. Timing is asserted loosely: orders and lower bounds,
never absolute speed."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from hookd.config import Settings
from hookd.domain.models import DEFAULT_TENANT, DeliveryStatus
from hookd.engine import Engine, EventInput
from hookd.store.port import DeliveryFilter
from support.receiver import Receiver, Reply

T = DEFAULT_TENANT
FAST = {"kind": "schedule", "delays": [0, 0.2, 0.2, 0.2], "jitter": 0}


def with_concurrency(settings: Settings, concurrency: int) -> Settings:
    return settings.replace(worker=dataclasses.replace(settings.worker, concurrency=concurrency))


async def all_delivered(engine: Engine, endpoint_id: str, count: int) -> list[int]:
    """Wait until `count` deliveries to the endpoint are delivered; their attempt counts."""
    deadline = time.monotonic() + 30
    wanted = DeliveryFilter(statuses=[DeliveryStatus.DELIVERED], endpoint_id=endpoint_id)
    while True:
        page = await engine.list_deliveries(None, wanted, limit=500)
        if len(page.items) >= count:
            return [d.total_attempts for d in page.items]
        assert time.monotonic() < deadline, f"{len(page.items)} of {count} delivered"
        await asyncio.sleep(0.05)


def most_in_flight(arrivals: list[float], response_time: float) -> int:
    """With every response taking at least `response_time`, requests that arrived less than
    that apart were in flight together."""
    times = sorted(arrivals)
    return max(
        (sum(1 for u in times if t - response_time * 0.95 < u <= t) for t in times), default=0
    )


async def test_a_slow_endpoint_holds_only_its_own_slots(settings: Settings) -> None:
    slow_reply = Reply(delay=1.0)
    async with (
        Receiver(lambda _r, _n, _k: slow_reply) as slow,
        Receiver() as fast,
        Engine(with_concurrency(settings, 16)) as engine,
    ):
        slow_ep, _ = await engine.create_endpoint(
            T, url=slow.url, event_types=["slow.*"], retry_policy=FAST, max_in_flight=4
        )
        fast_ep, _ = await engine.create_endpoint(
            T, url=fast.url, event_types=["fast.*"], retry_policy=FAST
        )
        for n in range(24):  # the slow endpoint's deliveries are due first
            await engine.publish(T, "slow.tick", {"n": n})
        for n in range(200):
            await engine.publish(T, "fast.tick", {"n": n})
        fast_attempts = await all_delivered(engine, fast_ep.id, 200)
        await slow.wait_for(lambda: len(slow.requests) >= 20, timeout=30)
        # every fast delivery was done before the slow endpoint's 20th request went out
        assert max(r.at for r in fast.requests) < sorted(r.at for r in slow.requests)[19]
        slow_attempts = await all_delivered(engine, slow_ep.id, 24)
    assert most_in_flight([r.at for r in slow.requests], 1.0) <= 4
    # held-back deliveries were deferred, not attempted: one attempt each
    assert fast_attempts == [1] * 200
    assert slow_attempts == [1] * 24
    assert len(slow.requests) == 24


async def test_a_rate_limit_spaces_deliveries_out(engine: Engine) -> None:
    async with Receiver() as receiver:
        endpoint, _ = await engine.create_endpoint(
            T,
            url=receiver.url,
            event_types=["*"],
            retry_policy=FAST,
            rate_limit={"per_second": 20, "burst": 5},
        )
        await engine.publish_batch(T, [EventInput("tick", {"n": n}) for n in range(40)])
        attempts = await all_delivered(engine, endpoint.id, 40)
    times = sorted(r.at for r in receiver.requests)
    assert attempts == [1] * 40  # waiting for a token is not an attempt
    # a burst of 5, then 20 a second: 35 more take at least 1.75 s
    assert times[-1] - times[0] >= 1.75 * 0.95
    for t in times:  # in any second, at most the burst and a second's worth (and one of slack)
        assert sum(1 for u in times if t <= u < t + 1.0) <= 5 + 20 + 1


async def test_429_with_retry_after_backs_that_endpoint_off_and_no_other(
    settings: Settings,
) -> None:
    def first_429(_r: object, n: int, _k: int) -> Reply:
        return Reply(429, headers={"Retry-After": "2"}) if n == 1 else Reply(200)

    async with (
        Receiver(first_429) as b,
        Receiver(lambda _r, _n, _k: Reply(delay=0.02)) as a,
        Engine(settings) as engine,
    ):
        b_ep, _ = await engine.create_endpoint(
            T, url=b.url, event_types=["b.*"], retry_policy=FAST, max_in_flight=1
        )
        a_ep, _ = await engine.create_endpoint(T, url=a.url, event_types=["a.*"], retry_policy=FAST)
        await engine.publish_batch(T, [EventInput("b.tick", {"n": n}) for n in range(5)])
        await b.wait_for(lambda: len(b.requests) == 1)
        await engine.publish_batch(T, [EventInput("a.tick", {"n": n}) for n in range(50)])
        a_attempts = await all_delivered(engine, a_ep.id, 50)
        b_attempts = await all_delivered(engine, b_ep.id, 5)
    first, second = sorted(r.at for r in b.requests)[:2]
    assert second - first >= 2.0  # nothing went to B during its Retry-After
    assert max(r.at for r in a.requests) < second  # A flowed meanwhile
    assert a_attempts == [1] * 50
    # the deferrals were not attempts: the 429'd delivery has two, the others one each
    assert sorted(b_attempts) == [1, 1, 1, 1, 2]
    assert len(b.requests) == 6
