"""Publishing over HTTP: idempotency (concurrent, across a restart, its window), batches, the
event list and time filters, and the endpoint fields stored for later releases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hookd.config import Settings
from hookd.engine import Engine
from support.api import api_over, problem

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {"amount": {"type": "number", "minimum": 0}},
    "required": ["amount"],
}


def paths(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body["errors"]]


async def all_events(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def subscribe(client: httpx.AsyncClient, **extra: Any) -> Any:
    body = {"url": "https://example.com/hook", "event_types": ["*"], **extra}
    response = await client.post("/v1/endpoints", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# idempotency ----------------------------------------------------------------------------------
async def test_concurrent_publishes_with_one_key_make_one_event(admin: httpx.AsyncClient) -> None:
    await subscribe(admin)
    request = {"type": "order.filled", "payload": {"amount": 1}}
    responses = await asyncio.gather(
        *(
            admin.post("/v1/events", json=request, headers={"Idempotency-Key": "same"})
            for _ in range(20)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json()["deliveries"] == 1 for r in responses)
    assert [r.json()["duplicate"] for r in responses].count(False) == 1
    assert len(await all_events(admin)) == 1
    assert len((await admin.get("/v1/deliveries")).json()["data"]) == 1


async def test_a_restart_in_between_changes_nothing(settings: Settings) -> None:
    request = {"type": "order.filled", "payload": {"amount": 1}, "idempotency_key": "k-1"}
    async with (
        Engine(settings, run_worker=False) as engine,
        api_over(engine) as api,
        api.client() as client,
    ):
        await subscribe(client)
        first = await client.post("/v1/events", json=request)
        assert first.status_code == 202
    # a new engine on the same database: the key is remembered
    async with (
        Engine(settings, run_worker=False) as engine,
        api_over(engine) as api,
        api.client() as client,
    ):
        again = await client.post("/v1/events", json=request)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["duplicate"] is True
        assert again.json()["deliveries"] == 1
        assert len(await all_events(client)) == 1


async def test_a_key_is_remembered_for_the_window_only(settings: Settings) -> None:
    short = settings.replace(idempotency_ttl=0.5)
    async with (
        Engine(short, run_worker=False) as engine,
        api_over(engine) as api,
        api.client() as client,
    ):
        request = {"type": "a.b", "payload": {}, "idempotency_key": "k"}
        first = await client.post("/v1/events", json=request)
        again = await client.post("/v1/events", json=request)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["id"] == first.json()["id"]
        await asyncio.sleep(0.7)
        later = await client.post("/v1/events", json=request)
        assert later.status_code == 202  # the key is treated as new
        assert later.json()["id"] != first.json()["id"]
        repeat = await client.post("/v1/events", json=request)
        assert repeat.status_code == 200
        assert repeat.json()["id"] == later.json()["id"]


async def test_keys_are_per_tenant(admin: httpx.AsyncClient, acme: httpx.AsyncClient) -> None:
    request = {"type": "a.b", "payload": {}, "idempotency_key": "shared"}
    mine = await admin.post("/v1/events", json=request)
    theirs = await acme.post("/v1/events", json=request)
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["id"] != theirs.json()["id"]


# batches --------------------------------------------------------------------------------------
async def test_a_batch_of_1000_is_accepted(admin: httpx.AsyncClient) -> None:
    await subscribe(admin, event_types=["order.*"])
    items = [
        {"type": "order.filled" if i % 2 else "user.created", "payload": {"i": i}}
        for i in range(1000)
    ]
    response = await admin.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 202, response.text[:500]
    results = response.json()["data"]
    assert [r["type"] for r in results] == [item["type"] for item in items]
    assert [r["deliveries"] for r in results] == [i % 2 for i in range(1000)]
    assert not any(r["duplicate"] for r in results)
    stored = await all_events(admin)
    assert {e["id"] for e in stored} == {r["id"] for r in results}
    by_id = {e["id"]: e["payload"]["i"] for e in stored}
    assert [by_id[r["id"]] for r in results] == list(range(1000))


async def test_one_bad_item_refuses_the_whole_batch(admin: httpx.AsyncClient) -> None:
    await subscribe(admin)
    declared = await admin.post("/v1/event-types", json={"name": "order.filled", "schema": ORDER})
    assert declared.status_code == 201
    items: list[dict[str, Any]] = [
        {"type": "order.filled", "payload": {"amount": i}} for i in range(1000)
    ]
    items[3] = {"type": "order.filled", "payload": {"amount": -3}}
    items[7] = {"type": "not a type", "payload": {}}
    items[9] = {"type": "order.filled", "payload": {}, "idempotency_key": ""}
    items[998] = {"type": "order.filled", "payload": {"amount": "lots"}}
    body = problem(await admin.post("/v1/events/batch", json={"events": items}), 422)
    assert "nothing was published" in body["detail"]
    assert sorted(paths(body)) == [
        "events[3].payload/amount",
        "events[7].type",
        "events[998].payload/amount",
        "events[9].idempotency_key",
    ]
    assert await all_events(admin) == []
    assert (await admin.get("/v1/deliveries")).json()["data"] == []


async def test_batch_shape_errors_name_their_items(admin: httpx.AsyncClient) -> None:
    body = problem(
        await admin.post(
            "/v1/events/batch",
            json={"events": [{"type": "a.b", "payload": {}}, {"type": "a.b", "payload": [1]}, {}]},
        ),
        422,
    )
    assert paths(body) == ["events[1].payload", "events[2].type", "events[2].payload"]
    body = problem(await admin.post("/v1/events/batch", json={"events": []}), 422)
    assert paths(body) == ["events"]
    too_many = [{"type": "a.b", "payload": {}}] * 1001
    body = problem(await admin.post("/v1/events/batch", json={"events": too_many}), 422)
    assert paths(body) == ["events"]
    assert await all_events(admin) == []


async def test_a_batch_repeats_idempotency_keys_as_duplicates(admin: httpx.AsyncClient) -> None:
    items = [
        {"type": "a.b", "payload": {"n": 1}, "idempotency_key": "x"},
        {"type": "a.b", "payload": {"n": 2}, "idempotency_key": "x"},
        {"type": "a.b", "payload": {"n": 3}, "idempotency_key": "y"},
    ]
    first = (await admin.post("/v1/events/batch", json={"events": items})).json()["data"]
    assert [r["duplicate"] for r in first] == [False, True, False]
    assert first[0]["id"] == first[1]["id"]
    again = await admin.post("/v1/events/batch", json={"events": items})
    assert again.status_code == 202
    assert [r["id"] for r in again.json()["data"]] == [r["id"] for r in first]
    assert all(r["duplicate"] for r in again.json()["data"])
    assert len(await all_events(admin)) == 2


async def test_batch_into_a_tenant(admin: httpx.AsyncClient, acme: httpx.AsyncClient) -> None:
    items = [{"type": "a.b", "payload": {}}]
    made = await admin.post("/v1/events/batch", json={"events": items, "tenant_id": "acme"})
    assert made.status_code == 202
    assert [e["id"] for e in await all_events(acme)] == [made.json()["data"][0]["id"]]
    problem(await acme.post("/v1/events/batch", json={"events": items, "tenant_id": "x"}), 404)


async def test_the_batch_route_has_its_own_body_limit(settings: Settings) -> None:
    # payloads up to 8 KiB: the other routes take bodies up to 8 KiB + 64 KiB of envelope
    limited = settings.replace(max_payload_bytes=8 * 1024, max_batch_bytes=512 * 1024)
    async with (
        Engine(limited, run_worker=False) as engine,
        api_over(engine) as api,
        api.client() as client,
    ):
        items = [{"type": "a.b", "payload": {"blob": "x" * 2000}} for _ in range(100)]  # ~200 KiB
        accepted = await client.post("/v1/events/batch", json={"events": items})
        assert accepted.status_code == 202, accepted.text[:300]
        # the same size on the single route is refused: its limit is not weakened
        single = {"type": "a.b", "payload": {"blobs": [i["payload"] for i in items]}}
        problem(await client.post("/v1/events", json=single), 413)
        problem(await client.post("/v1/endpoints", json={"pad": "x" * 200_000}), 413)
        # over the batch limit
        huge = [{"type": "a.b", "payload": {"blob": "x" * 6000}} for _ in range(100)]  # ~600 KiB
        body = problem(await client.post("/v1/events/batch", json={"events": huge}), 413)
        assert str(512 * 1024) in body["detail"]
        # and the payload limit still holds per event, as one of the batch's problems
        big = [{"type": "a.b", "payload": {}}, {"type": "a.b", "payload": {"b": "x" * 9000}}]
        body = problem(await client.post("/v1/events/batch", json={"events": big}), 422)
        assert paths(body) == ["events[1].payload"]
        assert "8192" in body["errors"][0]["message"]


# listing events -------------------------------------------------------------------------------
async def test_event_list_filters_and_pages(
    admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        await admin.post("/v1/events", json={"type": "order.filled", "payload": {"i": i}})
    await admin.post("/v1/events", json={"type": "user.created", "payload": {}})
    theirs = (await acme.post("/v1/events", json={"type": "order.filled", "payload": {}})).json()
    after = datetime.now(UTC) + timedelta(seconds=1)

    everyone = await all_events(admin)
    assert len(everyone) == 5
    assert [e["id"] for e in everyone] == sorted((e["id"] for e in everyone), reverse=True)
    assert {e["tenant_id"] for e in everyone} == {"default", "acme"}
    assert [e["id"] for e in await all_events(acme)] == [theirs["id"]]
    assert len(await all_events(admin, tenant_id="default")) == 4
    assert len(await all_events(admin, type="order.filled")) == 4
    assert len(await all_events(admin, type="order.filled", tenant_id="default")) == 3
    assert len(await all_events(admin, created_after=before.isoformat())) == 5
    assert await all_events(admin, created_after=after.isoformat()) == []
    assert await all_events(admin, created_before=before.isoformat()) == []
    assert (
        len(await all_events(admin, created_before=after.isoformat().replace("+00:00", "Z"))) == 5
    )
    page = (await admin.get("/v1/events", params={"limit": 2})).json()
    assert len(page["data"]) == 2 and page["next_cursor"]

    body = problem(await admin.get("/v1/events", params={"created_after": "yesterday"}), 422)
    assert paths(body) == ["created_after"]
    naive = await admin.get("/v1/events", params={"created_before": "2024-01-01T00:00:00"})
    assert paths(problem(naive, 422)) == ["created_before"]
    problem(await acme.get("/v1/events", params={"tenant_id": "default"}), 404)


async def test_delivery_list_time_filters(admin: httpx.AsyncClient) -> None:
    await subscribe(admin)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await admin.post("/v1/events", json={"type": "a.b", "payload": {}})
    after = datetime.now(UTC) + timedelta(seconds=1)

    async def count(**params: str) -> int:
        response = await admin.get("/v1/deliveries", params=params)
        assert response.status_code == 200, response.text
        return len(response.json()["data"])

    assert await count(created_after=before.isoformat()) == 1
    assert await count(created_after=after.isoformat()) == 0
    assert await count(created_before=before.isoformat()) == 0
    assert await count(created_after=before.isoformat(), created_before=after.isoformat()) == 1
    assert paths(
        problem(await admin.get("/v1/deliveries", params={"created_after": "x"}), 422)
    ) == ["created_after"]


# endpoint fields ------------------------------------------------------------------------------
async def test_endpoint_filter_and_rate_limit_are_stored(admin: httpx.AsyncClient) -> None:
    created = await subscribe(
        admin,
        filter={"minAmount": 10, "currencies": ["BTC", "ETH"]},
        rate_limit={"per_second": 2.5, "burst": 10},
    )
    assert created["filter"] == {"minAmount": 10, "currencies": ["BTC", "ETH"]}
    assert created["rate_limit"] == {"per_second": 2.5, "burst": 10}
    url = f"/v1/endpoints/{created['id']}"
    read = (await admin.get(url)).json()
    assert (read["filter"], read["rate_limit"]) == (created["filter"], created["rate_limit"])

    changed = (await admin.patch(url, json={"rate_limit": {"per_second": 1, "burst": 1}})).json()
    assert changed["rate_limit"] == {"per_second": 1.0, "burst": 1}
    assert changed["filter"] == created["filter"]
    cleared = (await admin.patch(url, json={"filter": None, "rate_limit": None})).json()
    assert (cleared["filter"], cleared["rate_limit"]) == (None, None)
    plain = await subscribe(admin)
    assert (plain["filter"], plain["rate_limit"]) == (None, None)


async def test_endpoint_filter_and_rate_limit_are_checked(admin: httpx.AsyncClient) -> None:
    base = {"url": "https://example.com/h", "event_types": ["*"]}
    body = problem(
        await admin.post(
            "/v1/endpoints", json={**base, "rate_limit": {"per_second": 0, "burst": 0}}
        ),
        422,
    )
    assert paths(body) == ["rate_limit.per_second", "rate_limit.burst"]
    body = problem(
        await admin.post(
            "/v1/endpoints",
            json={**base, "filter": [1], "rate_limit": {"per_second": "fast", "burst": 1, "x": 1}},
        ),
        422,
    )
    assert sorted(paths(body)) == ["filter", "rate_limit.per_second", "rate_limit.x"]
    body = problem(
        await admin.post("/v1/endpoints", json={**base, "filter": {"x": "y" * 20_000}}), 422
    )
    assert paths(body) == ["filter"]


async def test_creating_in_a_tenant(admin: httpx.AsyncClient, acme: httpx.AsyncClient) -> None:
    made = await subscribe(admin, tenant_id="globex")
    assert made["tenant_id"] == "globex"
    assert (await subscribe(acme, tenant_id="acme"))["tenant_id"] == "acme"
    problem(
        await acme.post(
            "/v1/endpoints",
            json={"url": "https://example.com/h", "event_types": ["*"], "tenant_id": "globex"},
        ),
        404,
    )
    body = problem(
        await admin.post(
            "/v1/endpoints",
            json={"url": "https://example.com/h", "event_types": ["*"], "tenant_id": "Glo Bex"},
        ),
        422,
    )
    assert paths(body) == ["tenant_id"]
    listed = (await admin.get("/v1/endpoints", params={"tenant_id": "globex"})).json()["data"]
    assert [e["id"] for e in listed] == [made["id"]]


# priority (issue 5) -----------------------------------------------------------------------------
async def test_priority_on_publish_and_per_endpoint(admin: httpx.AsyncClient) -> None:
    endpoint = await subscribe(admin, default_priority=4)
    assert endpoint["default_priority"] == 4
    plain = await subscribe(admin)
    assert plain["default_priority"] == 0
    changed = await admin.patch(f"/v1/endpoints/{plain['id']}", json={"default_priority": -2})
    assert changed.status_code == 200 and changed.json()["default_priority"] == -2
    given = await admin.post("/v1/events", json={"type": "a.b", "payload": {}, "priority": 9})
    assert given.status_code == 202, given.text
    event = (await admin.get(f"/v1/events/{given.json()['id']}")).json()
    assert event["priority"] == 9
    batch = await admin.post("/v1/events/batch", json={"events": [{"type": "a.b", "payload": {}}]})
    assert batch.status_code == 202, batch.text
    deliveries = (await admin.get("/v1/deliveries", params={"limit": 10})).json()["data"]
    found = {(d["event_id"], d["endpoint_id"]): d["priority"] for d in deliveries}
    batch_id = batch.json()["data"][0]["id"]
    assert found == {
        (given.json()["id"], endpoint["id"]): 9,
        (given.json()["id"], plain["id"]): 9,
        (batch_id, endpoint["id"]): 4,
        (batch_id, plain["id"]): -2,
    }
    # out of range, not an integer, or null where a value is required: refused
    for body in ({"priority": 11}, {"priority": -11}, {"priority": 1.5}, {"priority": "1"}):
        response = await admin.post("/v1/events", json={"type": "a.b", "payload": {}, **body})
        assert paths(problem(response, 422)) == ["priority"], response.text
    refused = await admin.post(
        "/v1/events/batch", json={"events": [{"type": "a.b", "payload": {}, "priority": 50}]}
    )
    assert refused.status_code == 422
    for value in (11, None):
        response = await admin.patch(
            f"/v1/endpoints/{plain['id']}", json={"default_priority": value}
        )
        assert response.status_code == 422, value


async def test_endpoint_max_in_flight_is_set_changed_and_reset(admin: httpx.AsyncClient) -> None:
    created = (
        await admin.post(
            "/v1/endpoints",
            json={"url": "https://example.com/h", "event_types": ["*"], "max_in_flight": 4},
        )
    ).json()
    assert created["max_in_flight"] == 4
    url = f"/v1/endpoints/{created['id']}"
    assert (await admin.get(url)).json()["max_in_flight"] == 4
    changed = (await admin.patch(url, json={"max_in_flight": 10})).json()
    assert changed["max_in_flight"] == 10
    assert (await admin.patch(url, json={"max_in_flight": None})).json()["max_in_flight"] is None
    for bad in (0, 10_001, "4", 2.5):
        response = await admin.patch(url, json={"max_in_flight": bad})
        assert response.status_code == 422, bad


async def test_endpoint_ordering(admin: httpx.AsyncClient) -> None:
    assert (await subscribe(admin))["ordering"] == "none"
    fifo = await subscribe(admin, ordering="fifo")
    assert fifo["ordering"] == "fifo"
    for _ in range(3):
        response = await admin.post("/v1/events", json={"type": "a.b", "payload": {}})
        assert response.status_code == 202
    listed = await admin.get("/v1/deliveries", params={"endpoint_id": fifo["id"]})
    assert sorted(d["status"] for d in listed.json()["data"]) == ["pending", "queued", "queued"]
    changed = await admin.patch(f"/v1/endpoints/{fifo['id']}", json={"ordering": "none"})
    assert changed.status_code == 200 and changed.json()["ordering"] == "none"
    listed = await admin.get("/v1/deliveries", params={"endpoint_id": fifo["id"]})
    assert {d["status"] for d in listed.json()["data"]} == {"pending"}
    for value in ("lifo", None):
        response = await admin.patch(f"/v1/endpoints/{fifo['id']}", json={"ordering": value})
        assert response.status_code == 422, value


async def test_resume_with_discard_parked_and_disable_after(admin: httpx.AsyncClient) -> None:
    endpoint = await subscribe(admin, disable_after=3600)
    assert endpoint["disable_after"] == 3600
    assert endpoint["last_success_at"] is None and endpoint["failing_since"] is None
    assert (await admin.post(f"/v1/endpoints/{endpoint['id']}/pause")).status_code == 200
    for _ in range(2):
        assert (
            await admin.post("/v1/events", json={"type": "a.b", "payload": {}})
        ).status_code == 202
    resumed = await admin.post(
        f"/v1/endpoints/{endpoint['id']}/resume", json={"discard_parked": True}
    )
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    listed = await admin.get("/v1/deliveries", params={"endpoint_id": endpoint["id"]})
    assert listed.json()["data"] == []
    for value in (0, -1, "1", 10**9):
        response = await admin.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"disable_after": value}
        )
        assert response.status_code == 422, value
    cleared = await admin.patch(f"/v1/endpoints/{endpoint['id']}", json={"disable_after": None})
    assert cleared.status_code == 200 and cleared.json()["disable_after"] is None


async def test_endpoint_fallback_url(admin: httpx.AsyncClient) -> None:
    endpoint = await subscribe(admin, fallback_url="https://backup.example.com/hook")
    assert endpoint["fallback_url"] == "https://backup.example.com/hook"
    for value in ("ftp://example.com/x", "https://user:pw@example.com/x", "not a url"):
        response = await admin.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"fallback_url": value}
        )
        assert paths(problem(response, 422)) == ["fallback_url"], value
    cleared = await admin.patch(f"/v1/endpoints/{endpoint['id']}", json={"fallback_url": None})
    assert cleared.status_code == 200 and cleared.json()["fallback_url"] is None
