"""The circuit breaker through the HTTP API: its settings on endpoints (`breaker`,
`fallback_after`), `GET /v1/endpoints/{id}/health`, and its metrics."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookd.config import Settings
from hookd.domain import errors, ids
from hookd.domain.models import Attempt, AttemptResult, DeliveryStatus
from hookd.engine import Engine
from hookd.policy.admission import BreakerChange
from hookd.policy.breaker import BreakerSettings, BreakerState, Transition
from support.api import Api, api_over, eventually, problem
from support.receiver import Receiver, always

DEFAULTS = BreakerSettings().to_dict()
TRIGGER_HAPPY = {"window": 60, "buckets": 6, "min_requests": 3, "cooldown": 10}
FALLBACK = "https://fallback.example/hook"


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"url": "https://example.com/hook", "event_types": ["*"], **fields}
    response = await client.post("/v1/endpoints", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def paths(body: dict[str, Any]) -> set[str]:
    return {e["path"] for e in body["errors"]}


async def fail_attempts(engine: Engine, endpoint_id: str, count: int) -> list[BreakerChange]:
    """`count` failed attempts at the endpoint, recorded as the worker would (no worker runs)."""
    endpoint = await engine.get_endpoint(None, endpoint_id)
    now = time.time()
    claimed = await engine.store.claim(worker_id="t", limit=count, now=now, lease_seconds=30)
    assert len(claimed) == count
    results = [
        AttemptResult(
            Attempt(
                id=ids.new_id(ids.ATTEMPT),
                delivery_id=c.id,
                endpoint_id=endpoint_id,
                number=1,
                started_at=now,
                duration_ms=1.0,
                outcome="retry",
                status_code=503,
            ),
            DeliveryStatus.PENDING,
            now + 60,
            breaker_success=False,
            breaker_settings=endpoint.breaker,
        )
        for c in claimed
    ]
    return await engine.store.record(worker_id="t", results=results, now=now)


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


# settings ---------------------------------------------------------------------------------------
async def test_a_new_endpoint_has_the_default_breaker(admin: httpx.AsyncClient) -> None:
    created = await create(admin)

    assert created["breaker"] == DEFAULTS
    assert created["fallback_after"] is None
    fetched = (await admin.get(f"/v1/endpoints/{created['id']}")).json()
    assert fetched["breaker"] == DEFAULTS


async def test_settings_round_trip_and_missing_ones_take_the_defaults(
    admin: httpx.AsyncClient,
) -> None:
    created = await create(
        admin,
        breaker={"failure_rate": 0.25, "min_requests": 5},
        fallback_url=FALLBACK,
        fallback_after=120,
    )

    assert created["breaker"] == {**DEFAULTS, "failure_rate": 0.25, "min_requests": 5}
    assert created["fallback_after"] == 120
    fetched = (await admin.get(f"/v1/endpoints/{created['id']}")).json()
    assert (fetched["breaker"], fetched["fallback_after"]) == (
        created["breaker"],
        created["fallback_after"],
    )
    listed = (await admin.get("/v1/endpoints")).json()["data"]
    assert [e["breaker"] for e in listed if e["id"] == created["id"]] == [created["breaker"]]


async def test_a_partial_update_keeps_the_other_settings(admin: httpx.AsyncClient) -> None:
    created = await create(admin, breaker={"failure_rate": 0.25, "window": 30})
    path = f"/v1/endpoints/{created['id']}"

    updated = await admin.patch(path, json={"breaker": {"cooldown": 5, "enabled": False}})

    assert updated.status_code == 200, updated.text
    expected = {**DEFAULTS, "failure_rate": 0.25, "window": 30, "cooldown": 5, "enabled": False}
    assert updated.json()["breaker"] == expected
    untouched = await admin.patch(path, json={"name": "other"})
    assert untouched.json()["breaker"] == expected
    assert (await admin.get(path)).json()["breaker"] == expected


async def test_invalid_settings_are_422_with_breaker_paths(admin: httpx.AsyncClient) -> None:
    body = {"url": "https://example.com/hook", "event_types": ["*"]}
    ranges = await admin.post(
        "/v1/endpoints",
        json={**body, "breaker": {"window": 0.5, "failure_rate": 1.5, "buckets": 500}},
    )
    assert paths(problem(ranges, 422)) == {
        "breaker.window",
        "breaker.failure_rate",
        "breaker.buckets",
    }
    # allowed one by one, not together: the engine's rule
    crossed = await admin.post(
        "/v1/endpoints", json={**body, "breaker": {"cooldown": 700, "max_cooldown": 600}}
    )
    assert paths(problem(crossed, 422)) == {"breaker.cooldown"}
    unknown = await admin.post("/v1/endpoints", json={**body, "breaker": {"threshold": 1}})
    assert problem(unknown, 422)["errors"]
    wrong_type = await admin.post("/v1/endpoints", json={**body, "breaker": {"enabled": "yes"}})
    assert problem(wrong_type, 422)["errors"]

    created = await create(admin)
    path = f"/v1/endpoints/{created['id']}"
    # an update is checked against the settings it keeps
    low = await admin.patch(path, json={"breaker": {"max_cooldown": 10}})
    assert paths(problem(low, 422)) == {"breaker.cooldown"}
    null = await admin.patch(path, json={"breaker": None})
    assert problem(null, 422)["errors"]
    assert (await admin.get(path)).json()["breaker"] == DEFAULTS


async def test_fallback_after_needs_a_fallback_url(admin: httpx.AsyncClient) -> None:
    body = {"url": "https://example.com/hook", "event_types": ["*"]}
    alone = await admin.post("/v1/endpoints", json={**body, "fallback_after": 60})
    assert paths(problem(alone, 422)) == {"fallback_after"}
    out_of_range = await admin.post(
        "/v1/endpoints", json={**body, "fallback_url": FALLBACK, "fallback_after": 0}
    )
    assert paths(problem(out_of_range, 422)) == {"fallback_after"}

    created = await create(admin)
    path = f"/v1/endpoints/{created['id']}"
    without = await admin.patch(path, json={"fallback_after": 60})
    assert paths(problem(without, 422)) == {"fallback_after"}
    both = await admin.patch(path, json={"fallback_url": FALLBACK, "fallback_after": 60})
    assert both.status_code == 200, both.text
    assert both.json()["fallback_after"] == 60
    # removing the URL it diverts to, and not the delay, leaves it nowhere to go
    orphan = await admin.patch(path, json={"fallback_url": None})
    assert paths(problem(orphan, 422)) == {"fallback_after"}
    cleared = await admin.patch(path, json={"fallback_url": None, "fallback_after": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["fallback_url"], cleared.json()["fallback_after"]) == (None, None)


async def test_the_engine_takes_settings_records_and_reports_problems(api: Api) -> None:
    engine = api.engine
    endpoint, _ = await engine.create_endpoint(
        "acme", url="https://example.com/hook", event_types=["*"], breaker=BreakerSettings()
    )
    assert endpoint.breaker == BreakerSettings()
    updated = await engine.update_endpoint(None, endpoint.id, breaker={"min_requests": 7})
    assert updated.breaker == BreakerSettings(min_requests=7)
    with pytest.raises(errors.ValidationError) as raised:
        await engine.update_endpoint(None, endpoint.id, breaker={"window": float("inf")})
    assert [p.path for p in raised.value.problems] == ["breaker.window"]


# health -----------------------------------------------------------------------------------------
async def test_a_fresh_endpoint_is_healthy(acme: httpx.AsyncClient) -> None:
    created = await create(acme, rate_limit={"per_second": 5, "burst": 10})

    response = await acme.get(f"/v1/endpoints/{created['id']}/health")

    assert response.status_code == 200, response.text
    health = response.json()
    assert health["endpoint_id"] == created["id"]
    assert (health["status"], health["status_reason"]) == ("active", None)
    assert (health["last_success_at"], health["failing_since"]) == (None, None)
    assert health["breaker"] == {
        "state": "closed",
        "until": None,
        "cooldown": 0.0,
        "tripped_at": None,
        "successes": 0,
        "failures": 0,
        "settings": DEFAULTS,
        "history": [],
    }
    assert health["backoff_until"] is None
    assert health["tokens"] == 10  # a new bucket is full
    assert health["checked_at"].endswith("Z")
    plain = await create(acme)
    assert (await acme.get(f"/v1/endpoints/{plain['id']}/health")).json()["tokens"] is None


async def test_failures_open_the_breaker_and_health_shows_it(
    api: Api, acme: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    endpoint = await create(acme, breaker=TRIGGER_HAPPY)
    for n in range(3):
        published = await acme.post("/v1/events", json={"type": "a.b", "payload": {"n": n}})
        assert published.status_code == 202, published.text

    changes = await fail_attempts(api.engine, endpoint["id"], 3)
    assert [c.transition.to_state for c in changes] == [BreakerState.OPEN]

    health = (await acme.get(f"/v1/endpoints/{endpoint['id']}/health")).json()
    breaker = health["breaker"]
    assert breaker["state"] == "open"
    assert (breaker["successes"], breaker["failures"]) == (0, 3)
    assert breaker["cooldown"] == 10
    assert breaker["tripped_at"] is not None and breaker["until"] > breaker["tripped_at"]
    assert breaker["settings"] == {**DEFAULTS, **TRIGGER_HAPPY}
    assert breaker["history"] == [
        {
            "at": breaker["tripped_at"],
            "from": "closed",
            "to": "open",
            "reason": "3 of 3 attempts failed in 60 s",
        }
    ]
    assert health["failing_since"] is not None

    samples = await scrape(admin)
    gauge = ("hookd_endpoint_breaker_open", (("endpoint_id", endpoint["id"]),))
    assert samples[gauge] == 1
    assert samples[("hookd_breakers_tripped", ())] == 1
    assert samples[("hookd_breaker_transitions_total", (("to", "open"),))] == 0  # no worker here


async def test_health_of_a_foreign_or_unknown_endpoint_is_404(
    acme: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    foreign = await create(admin, tenant_id="globex")

    problem(await acme.get(f"/v1/endpoints/{foreign['id']}/health"), 404)
    problem(await acme.get(f"/v1/endpoints/{ids.new_id(ids.ENDPOINT)}/health"), 404)
    seen_by_admin = await admin.get(f"/v1/endpoints/{foreign['id']}/health")
    assert seen_by_admin.status_code == 200


# metrics ----------------------------------------------------------------------------------------
async def test_metrics_without_a_tripped_breaker(admin: httpx.AsyncClient) -> None:
    await create(admin)

    samples = await scrape(admin)

    assert samples[("hookd_breakers_tripped", ())] == 0
    assert not [name for name, _ in samples if name == "hookd_endpoint_breaker_open"]
    for state in ("open", "half_open", "closed"):
        assert samples[("hookd_breaker_transitions_total", (("to", state),))] == 0


async def test_the_counters_count_transitions(api: Api, admin: httpx.AsyncClient) -> None:
    step = Transition(time.time(), BreakerState.CLOSED, BreakerState.OPEN, "test")
    api.engine.counters.breaker_changed(BreakerChange("ep_x", step))
    api.engine.counters.breaker_changed(
        BreakerChange("ep_x", dataclasses.replace(step, to_state=BreakerState.HALF_OPEN))
    )
    api.engine.counters.breaker_changed(BreakerChange("ep_y", step))

    samples = await scrape(admin)

    assert samples[("hookd_breaker_transitions_total", (("to", "open"),))] == 2
    assert samples[("hookd_breaker_transitions_total", (("to", "half_open"),))] == 1
    assert samples[("hookd_breaker_transitions_total", (("to", "closed"),))] == 0


@pytest.fixture
async def working(settings: Settings) -> AsyncIterator[Api]:
    """The API over an engine with its worker running."""
    async with Engine(settings) as engine, api_over(engine) as running:
        yield running


async def test_the_worker_feeds_the_transition_counter(working: Api) -> None:
    async with Receiver(always(500)) as failing, working.client() as client:
        endpoint = await create(
            client,
            url=failing.url,
            breaker={"min_requests": 2, "cooldown": 60},
            retry_policy={"kind": "schedule", "delays": [0, 30], "jitter": 0},
        )
        for _ in range(2):
            await client.post("/v1/events", json={"type": "a.b", "payload": {}})
        await eventually(lambda: working.engine.counters.breaker_transitions["open"] == 1)

        samples = await scrape(client)
        assert samples[("hookd_breaker_transitions_total", (("to", "open"),))] == 1
        gauge = ("hookd_endpoint_breaker_open", (("endpoint_id", endpoint["id"]),))
        assert samples[gauge] == 1
        health = (await client.get(f"/v1/endpoints/{endpoint['id']}/health")).json()
        assert health["breaker"]["state"] == "open"
        assert health["breaker"]["failures"] == 2
