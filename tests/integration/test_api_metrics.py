"""GET /metrics on a real app, a real worker and real receivers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import hookd
from hookd.config import Settings
from hookd.domain.models import DeliveryStatus
from hookd.engine import Engine
from hookd.store.port import DeliveryFilter
from support.api import Api, api_over, eventually, problem
from support.receiver import Receiver, Reply, always, sequence

FAST = {"kind": "schedule", "delays": [0, 0.05, 0.05], "jitter": 0}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def overrides() -> dict[str, object]:
    return {}


@pytest.fixture
async def api(settings: Settings, overrides: dict[str, object]) -> AsyncIterator[Api]:
    async with Engine(settings.replace(**overrides)) as engine, api_over(engine) as running:
        yield running


async def scrape(api: Api, key: str | None = None) -> Samples:
    """The metrics, read with `key` (the admin key by default: metrics are private by default)."""
    async with api.client(key or api.admin_key, admin=False) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def attempts(samples: Samples, endpoint: str, outcome: str) -> float:
    key = ("hookd_delivery_attempts_total", (("endpoint", endpoint), ("outcome", outcome)))
    return samples.get(key, 0.0)


async def settled(api: Api, count: int) -> None:
    ended = DeliveryFilter(
        statuses=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DEAD]
    )

    async def done() -> bool:
        page = await api.engine.list_deliveries(None, ended, limit=500)
        return len(page.items) >= count

    await eventually(done)


async def test_counts_what_was_published_and_delivered(api: Api) -> None:
    async with (
        Receiver(sequence(500, 200)) as flaky,
        Receiver(always(400)) as rejecting,
        api.client() as client,
    ):
        ids = []
        for url in (flaky.url, rejecting.url):
            created = await client.post(
                "/v1/endpoints", json={"url": url, "event_types": ["*"], "retry_policy": FAST}
            )
            assert created.status_code == 201
            ids.append(created.json()["id"])
        for n in range(3):
            await client.post("/v1/events", json={"type": "a.b", "payload": {"n": n}})
        repeat = {"type": "a.b", "payload": {}, "idempotency_key": "once"}
        await client.post("/v1/events", json=repeat)
        await client.post("/v1/events", json=repeat)  # a repeat is not a new event
        await settled(api, 8)

    samples = await scrape(api)
    assert samples[("hookd_events_published_total", ())] == 4
    flaky_id, rejecting_id = ids
    assert attempts(samples, flaky_id, "retry") == 4
    assert attempts(samples, flaky_id, "delivered") == 4
    assert attempts(samples, rejecting_id, "failed") == 4
    assert attempts(samples, rejecting_id, "delivered") == 0
    assert samples[("hookd_attempt_duration_seconds_count", ())] == 12
    assert samples[("hookd_attempt_duration_seconds_bucket", (("le", "+Inf"),))] == 12
    assert 0 < samples[("hookd_attempt_duration_seconds_sum", ())] < 12 * 5
    assert samples[("hookd_queue_depth", (("state", "due"),))] == 0
    assert samples[("hookd_queue_depth", (("state", "parked"),))] == 0
    assert samples[("hookd_in_flight", ())] == 0
    assert samples[("hookd_build_info", (("version", hookd.__version__),))] == 1


async def test_queue_depth_and_in_flight(api: Api) -> None:
    release = asyncio.Event()

    async def hold(*_: object) -> Reply:
        await release.wait()
        return Reply(200)

    async with Receiver(hold) as slow, api.client() as client:
        await client.post("/v1/endpoints", json={"url": slow.url, "event_types": ["*"]})
        paused = await client.post("/v1/endpoints", json={"url": slow.url, "event_types": ["*"]})
        await client.post(f"/v1/endpoints/{paused.json()['id']}/pause")
        for _ in range(2):
            await client.post("/v1/events", json={"type": "a.b", "payload": {}})
        await slow.wait_for(lambda: len(slow.requests) == 2)
        await asyncio.sleep(1.1)  # past the queue-count cache
        samples = await scrape(api)
        assert samples[("hookd_in_flight", ())] == 2
        assert samples[("hookd_queue_depth", (("state", "sending"),))] == 2
        assert samples[("hookd_queue_depth", (("state", "parked"),))] == 2
        assert samples[("hookd_queue_depth", (("state", "pending"),))] == 0
        release.set()
        await settled(api, 2)


@pytest.mark.parametrize("overrides", [{"metrics_endpoint_cap": 1}])
async def test_endpoints_past_the_cap_share_the_other_series(api: Api) -> None:
    async with Receiver() as receiver, api.client() as client:
        for _ in range(3):
            await client.post("/v1/endpoints", json={"url": receiver.url, "event_types": ["*"]})
        await client.post("/v1/events", json={"type": "a.b", "payload": {}})
        await settled(api, 3)
    samples = await scrape(api)
    series = {
        dict(labels)["endpoint"]
        for (name, labels), _ in samples.items()
        if name == "hookd_delivery_attempts_total"
    }
    assert len(series) == 2 and "other" in series
    assert attempts(samples, "other", "delivered") == 2
    assert sum(v for (n, _), v in samples.items() if n == "hookd_delivery_attempts_total") == 3


async def test_metrics_are_private_by_default(api: Api) -> None:
    async with api.client(admin=False) as anonymous, api.client(api.tenant_key) as tenant:
        refused = problem(await anonymous.get("/metrics"), 401)
        assert "API key" in refused["detail"]
        problem(await tenant.get("/metrics"), 403)
    assert ("hookd_in_flight", ()) in await scrape(api, api.admin_key)


@pytest.mark.parametrize("overrides", [{"metrics_public": True}])
async def test_public_metrics_need_no_key(api: Api) -> None:
    async with api.client(admin=False) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert "hookd_in_flight" in response.text


async def test_each_app_has_its_own_registry(settings: Settings) -> None:
    async with (
        Engine(settings, run_worker=False) as first,
        api_over(first) as one,
        api_over(first) as two,  # a second app over the same engine: no duplicate metrics
    ):
        await first.publish("default", "a.b", {})
        assert (await scrape(one))[("hookd_events_published_total", ())] == 1
        assert (await scrape(two))[("hookd_events_published_total", ())] == 1
