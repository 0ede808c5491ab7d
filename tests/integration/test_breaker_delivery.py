"""The circuit breaker against a real flapping receiver on 127.0.0.1, on both databases (issue 5):
it opens on failures, holds deliveries back unsent (not attempted, not lost), lets exactly one
probe through after each cool-down, doubles the cool-down when the probe fails, and closes when
one succeeds, after which everything held is delivered. A healthy endpoint beside it is never
held up. Timing is asserted loosely: lower bounds and orders, never absolute speed."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from hookd.config import Settings
from hookd.domain.models import DEFAULT_TENANT, DeliveryStatus, Endpoint
from hookd.engine import Engine, EventInput
from hookd.policy.breaker import BreakerSettings, BreakerState
from hookd.store.port import DeliveryFilter
from support.receiver import Received, Receiver, Reply

T = DEFAULT_TENANT
#: Retries every 0.2 s: without a breaker, a failing receiver would see five requests a second
#: for each delivery.
FAST = {"kind": "schedule", "delays": [0] + [0.2] * 40, "jitter": 0}
BREAKER = BreakerSettings(
    window=30, buckets=10, min_requests=5, failure_rate=0.5, cooldown=1.0, max_cooldown=8.0
)


async def with_breaker(engine: Engine, endpoint: Endpoint, **changes: object) -> Endpoint:
    updated = dataclasses.replace(endpoint, breaker=BREAKER, **changes)  # type: ignore[arg-type]
    await engine.store.update_endpoint(updated)
    return updated


async def delivered(engine: Engine, endpoint_id: str, count: int, timeout: float = 30) -> int:
    """Wait until `count` deliveries to the endpoint are delivered; their attempts in all."""
    deadline = time.monotonic() + timeout
    wanted = DeliveryFilter(statuses=[DeliveryStatus.DELIVERED], endpoint_id=endpoint_id)
    while True:
        page = await engine.list_deliveries(None, wanted, limit=500)
        if len(page.items) >= count:
            return sum(d.total_attempts for d in page.items)
        assert time.monotonic() < deadline, f"{len(page.items)} of {count} delivered"
        await asyncio.sleep(0.05)


async def test_the_breaker_opens_probes_once_per_cooldown_and_closes(settings: Settings) -> None:
    healthy = asyncio.Event()

    def flapping(_r: Received, _n: int, _k: int) -> Reply:
        return Reply(200) if healthy.is_set() else Reply(500)

    async with (
        Receiver(flapping) as c,
        Receiver() as a,
        Engine(settings) as engine,
    ):
        c_ep, _ = await engine.create_endpoint(T, url=c.url, event_types=["c.*"], retry_policy=FAST)
        await with_breaker(engine, c_ep)
        a_ep, _ = await engine.create_endpoint(T, url=a.url, event_types=["a.*"])
        await engine.publish_batch(T, [EventInput("c.tick", {"n": n}) for n in range(20)])
        await c.wait_for(lambda: len(c.requests) >= 20)
        # opened by the first failures: nothing more goes out during the cool-down ...
        await asyncio.sleep(0.6)
        assert len(c.requests) == 20
        # ... while another endpoint flows
        await engine.publish_batch(T, [EventInput("a.tick", {"n": n}) for n in range(30)])
        assert await delivered(engine, a_ep.id, 30, timeout=5) == 30
        assert len(c.requests) == 20
        # one probe after the cool-down; it fails: open again for twice as long
        await c.wait_for(lambda: len(c.requests) >= 21, timeout=10)
        await asyncio.sleep(0.5)
        assert len(c.requests) == 21
        healthy.set()
        attempts = await delivered(engine, c_ep.id, 20, timeout=30)
        gate = (await engine.store.endpoint_gates([c_ep.id]))[c_ep.id]

    times = sorted(r.at for r in c.requests)
    first_wave, probe_1, probe_2 = times[19], times[20], times[21]
    assert probe_1 - first_wave >= BREAKER.cooldown * 0.9
    assert probe_2 - probe_1 >= 2 * BREAKER.cooldown * 0.9  # the cool-down doubled
    # after the successful probe, everything held went at once (not after another cool-down)
    assert times[-1] - probe_2 < 2 * BREAKER.cooldown
    # held deliveries were deferred, not attempted: one attempt per request, none lost
    assert attempts == len(c.requests) == 20 + 2 + 19
    assert gate.breaker.state is BreakerState.CLOSED
    assert [t.to_state for t in gate.breaker.history] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def test_a_breaker_open_past_fallback_after_diverts_to_the_fallback(
    settings: Settings,
) -> None:
    async with (
        Receiver(lambda _r, _n, _k: Reply(503)) as primary,
        Receiver() as fallback,
        Engine(settings) as engine,
    ):
        endpoint, _ = await engine.create_endpoint(
            T, url=primary.url, event_types=["*"], retry_policy=FAST
        )
        endpoint = await with_breaker(
            engine, endpoint, fallback_url=fallback.url, fallback_after=1.5
        )
        await engine.publish_batch(T, [EventInput("tick", {"n": n}) for n in range(10)])
        await fallback.wait_for(lambda: len(fallback.requests) >= 10, timeout=30)
        attempts = await delivered(engine, endpoint.id, 10)
    opened_at = sorted(r.at for r in primary.requests)[9]
    assert min(r.at for r in fallback.requests) - opened_at >= 1.5 * 0.9
    assert {r.id for r in fallback.requests} == {r.id for r in primary.requests}
    assert all(r.headers.get("webhook-fallback") == "true" for r in fallback.requests)
    # the primary saw its first wave and the probes, no retry storm
    assert len(primary.requests) <= 10 + 2
    assert attempts == len(primary.requests) + len(fallback.requests)


async def test_a_disabled_breaker_keeps_retrying(engine: Engine) -> None:
    async with Receiver(lambda _r, _n, k: Reply(500) if k <= 3 else Reply(200)) as c:
        endpoint, _ = await engine.create_endpoint(
            T, url=c.url, event_types=["*"], retry_policy=FAST
        )
        off = dataclasses.replace(BREAKER, enabled=False)
        await engine.store.update_endpoint(dataclasses.replace(endpoint, breaker=off))
        await engine.publish_batch(T, [EventInput("tick", {"n": n}) for n in range(10)])
        attempts = await delivered(engine, endpoint.id, 10)
    assert attempts == 40  # three failures each, no breaker pause between them
    gates = await engine.store.endpoint_gates([endpoint.id])
    assert endpoint.id not in gates or gates[endpoint.id].breaker.state is BreakerState.CLOSED
