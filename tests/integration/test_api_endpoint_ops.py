"""Endpoint operations through the HTTP API, with a real worker and real receivers: pause and
resume, test sends, and stats (GET /v1/endpoints/{id}/stats, GET /v1/stats)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookd.config import Settings
from hookd.domain.models import DeliveryStatus
from hookd.engine import Engine
from hookd.policy import signing
from hookd.store.port import DeliveryFilter
from support.api import Api, api_over, eventually, problem
from support.receiver import Receiver, always, sequence

FAST = {"kind": "schedule", "delays": [0, 0.1], "jitter": 0}


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    async with api_over(engine) as running:
        yield running


async def create(api: Api, url: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    async with api.client(key) as client:
        response = await client.post(
            "/v1/endpoints", json={"url": url, "event_types": ["*"], **fields}
        )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(api: Api, endpoint_id: str, *statuses: DeliveryStatus) -> list[Any]:
    page = await api.engine.list_deliveries(
        None, DeliveryFilter(endpoint_id=endpoint_id, statuses=statuses), limit=500
    )
    return page.items


# pause and resume -----------------------------------------------------------------------------
async def test_pause_parks_and_resume_delivers_what_waited(api: Api) -> None:
    async with Receiver() as receiver, api.client() as client:
        endpoint = await create(api, receiver.url)
        paused = await client.post(f"/v1/endpoints/{endpoint['id']}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "paused"
        assert paused.json()["status_reason"]
        await client.post("/v1/events", json={"type": "order.filled", "payload": {"n": 1}})
        await eventually(lambda: deliveries(api, endpoint["id"], DeliveryStatus.PARKED))
        assert receiver.requests == []
        again = await client.post(f"/v1/endpoints/{endpoint['id']}/pause")  # idempotent
        assert again.json()["status"] == "paused"

        resumed = await client.post(f"/v1/endpoints/{endpoint['id']}/resume")
        assert resumed.status_code == 200
        assert resumed.json()["status"] == "active"
        assert resumed.json()["status_reason"] is None
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
        assert (await client.get(f"/v1/endpoints/{endpoint['id']}")).json()["status"] == "active"


async def test_resume_re_enables_a_disabled_endpoint(api: Api) -> None:
    async with Receiver(sequence(410, 200)) as receiver, api.client() as client:
        endpoint = await create(api, receiver.url, retry_policy=FAST)
        await client.post("/v1/events", json={"type": "a.b", "payload": {}})
        await eventually(lambda: deliveries(api, endpoint["id"], DeliveryStatus.PARKED))
        assert (await client.get(f"/v1/endpoints/{endpoint['id']}")).json()["status"] == "disabled"
        assert (await client.post(f"/v1/endpoints/{endpoint['id']}/resume")).status_code == 200
        await eventually(lambda: deliveries(api, endpoint["id"], DeliveryStatus.DELIVERED))
        assert len(receiver.requests) == 2


@pytest.mark.parametrize("action", ["pause", "resume", "test", "secret/rotate"])
async def test_operations_on_unknown_or_foreign_endpoints_are_404(api: Api, action: str) -> None:
    endpoint = await create(api, "https://example.com/hook")  # tenant "default"
    async with api.client(api.tenant_key) as tenant, api.client() as admin:
        problem(await tenant.post(f"/v1/endpoints/{endpoint['id']}/{action}"), 404)
        problem(await admin.post(f"/v1/endpoints/ep_nope/{action}"), 404)
        problem(await tenant.get(f"/v1/endpoints/{endpoint['id']}/stats"), 404)
    # the foreign endpoint did not change
    assert (await api.engine.get_endpoint(None, endpoint["id"])).status.value == "active"


# test sends -------------------------------------------------------------------------------------
async def test_send_test_is_signed_like_a_real_delivery_and_not_stored(api: Api) -> None:
    async with Receiver(always(202, body=b"thanks")) as receiver, api.client() as client:
        endpoint = await create(api, receiver.url, headers={"X-Team": "payments"})
        secret = endpoint["secret"]
        response = await client.post(
            f"/v1/endpoints/{endpoint['id']}/test",
            json={"event_type": "order.filled", "payload": {"order": 7}},
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["outcome"] == "success"
        assert result["status_code"] == 202
        assert result["response_body"] == "thanks"
        assert result["message_id"].startswith("test_")
        assert result["url"] == receiver.url
        assert result["duration_ms"] >= 0
        assert result["request_headers"]["X-Team"] == "[redacted]"
        assert result["request_headers"]["webhook-signature"].startswith("v1,")

        (request,) = receiver.requests
        assert request.id == result["message_id"]
        assert request.headers["x-team"] == "payments"
        assert request.json()["type"] == "order.filled"
        assert request.json()["data"] == {"order": 7}
        signing.verify(secret, request.headers, request.body)
        assert StandardWebhook(secret).verify(request.body, request.headers)["data"]["order"] == 7

        default = await client.post(f"/v1/endpoints/{endpoint['id']}/test")
        assert default.status_code == 200
        assert receiver.requests[1].json()["type"] == "hookd.test"
        assert receiver.requests[1].json()["data"] == {"test": True}
        # nothing was stored: no delivery, no event
        assert await deliveries(api, endpoint["id"]) == []
        assert (await api.engine.get_endpoint_stats(None, endpoint["id"], window=60)).total == 0


async def test_send_test_to_a_paused_endpoint_still_sends(api: Api) -> None:
    async with Receiver() as receiver, api.client() as client:
        endpoint = await create(api, receiver.url)
        await client.post(f"/v1/endpoints/{endpoint['id']}/pause")
        response = await client.post(f"/v1/endpoints/{endpoint['id']}/test")
        assert response.json()["outcome"] == "success"
        assert len(receiver.requests) == 1


async def test_send_test_reports_failures_as_results(api: Api) -> None:
    async with Receiver(always(503, body=b"down")) as receiver, api.client() as client:
        endpoint = await create(api, receiver.url)
        result = (await client.post(f"/v1/endpoints/{endpoint['id']}/test")).json()
        assert (result["outcome"], result["status_code"]) == ("retry", 503)
        assert result["response_body"] == "down"
        port = receiver.port
    closed = await create(api, f"http://127.0.0.1:{port}/gone")
    async with api.client() as client:
        response = await client.post(f"/v1/endpoints/{closed['id']}/test")
    assert response.status_code == 200
    result = response.json()
    assert result["status_code"] is None
    assert result["outcome"] == "retry"
    assert result["error"].startswith("connection")


async def test_send_test_goes_through_the_ssrf_guard(api: Api) -> None:
    # the test settings allow loopback only: a private address is refused before connecting
    endpoint = await create(api, "http://10.255.255.1:9/hook")
    async with api.client() as client:
        result = (await client.post(f"/v1/endpoints/{endpoint['id']}/test")).json()
    assert result["outcome"] == "reject"
    assert result["error"].startswith("blocked")
    assert result["status_code"] is None


async def test_send_test_validates_its_input(api: Api, settings: Settings) -> None:
    endpoint = await create(api, "https://example.com/hook")
    path = f"/v1/endpoints/{endpoint['id']}/test"
    async with api.client() as client:
        bad_type = problem(await client.post(path, json={"event_type": "no spaces"}), 422)
        assert bad_type["errors"][0]["path"] == "type"
        problem(await client.post(path, json={"payload": [1, 2]}), 422)
        problem(await client.post(path, json={"unknown": 1}), 422)
        problem(
            await client.post(path, content=b"{", headers={"content-type": "application/json"}), 400
        )
        big = {"blob": "x" * settings.max_payload_bytes}
        problem(await client.post(path, json={"payload": big}), 413)


# stats ------------------------------------------------------------------------------------------
async def test_endpoint_stats_count_statuses_and_latency(api: Api) -> None:
    async with (
        Receiver(always(200)) as good,
        Receiver(always(400)) as bad,
        api.client() as client,
    ):
        ok = await create(api, good.url, event_types=["order.*"])
        rejecting = await create(api, bad.url, event_types=["order.filled"])
        for n in range(3):
            await client.post("/v1/events", json={"type": "order.filled", "payload": {"n": n}})
        await client.post("/v1/events", json={"type": "order.canceled", "payload": {}})
        await eventually(lambda: _count(api, ok["id"], DeliveryStatus.DELIVERED, 4))
        await eventually(lambda: _count(api, rejecting["id"], DeliveryStatus.FAILED, 3))

        response = await client.get(f"/v1/endpoints/{ok['id']}/stats", params={"window": "1h"})
        assert response.status_code == 200, response.text
        found = response.json()
        assert found["endpoint_id"] == ok["id"]
        assert found["window"] == 3600
        assert found["total"] == 4
        assert found["deliveries"] == {
            "pending": 0, "sending": 0, "delivered": 4, "failed": 0, "dead": 0, "parked": 0,
            "queued": 0,
        }  # fmt: skip
        assert found["success_rate"] == 1.0
        latency = found["latency"]
        assert latency["attempts"] == 4 and latency["sampled"] == 4
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
        assert latency["mean_ms"] > 0
        assert [(t["event_type"], t["total"]) for t in found["by_event_type"]] == [
            ("order.filled", 3),
            ("order.canceled", 1),
        ]

        failing = (await client.get(f"/v1/endpoints/{rejecting['id']}/stats")).json()
        assert failing["deliveries"]["failed"] == 3
        assert failing["success_rate"] == 0.0
        assert failing["window"] == 86400  # the default, 24h


async def _count(api: Api, endpoint_id: str, status: DeliveryStatus, n: int) -> bool:
    return len(await deliveries(api, endpoint_id, status)) == n


@pytest.mark.parametrize("window", ["abc", "0", "91d", "-5", ""])
async def test_stats_refuse_a_bad_window(api: Api, window: str) -> None:
    endpoint = await create(api, "https://example.com/hook")
    async with api.client() as client:
        for path in (f"/v1/endpoints/{endpoint['id']}/stats", "/v1/stats"):
            body = problem(await client.get(path, params={"window": window}), 422)
            assert body["errors"][0]["path"] == "window"


async def test_stats_with_no_traffic(api: Api) -> None:
    endpoint = await create(api, "https://example.com/hook")
    async with api.client() as client:
        found = (await client.get(f"/v1/endpoints/{endpoint['id']}/stats")).json()
        overall = (await client.get("/v1/stats")).json()
    for body in (found, overall):
        assert body["total"] == 0
        assert body["success_rate"] is None
        assert body["latency"] == {
            "attempts": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None,
            "sampled": 0,
        }  # fmt: skip
    assert overall["by_endpoint"] == [] and overall["by_event_type"] == []


async def test_global_stats_are_scoped_to_the_tenant(api: Api) -> None:
    async with (
        Receiver() as receiver,
        api.client() as admin,
        api.client(api.tenant_key) as tenant,
    ):
        mine = await create(api, receiver.url, key=api.tenant_key)
        theirs = await create(api, receiver.url)
        await tenant.post("/v1/events", json={"type": "acme.order", "payload": {}})
        for _ in range(2):
            await admin.post("/v1/events", json={"type": "default.order", "payload": {}})
        await eventually(lambda: len(receiver.requests) == 3)
        await eventually(lambda: _count(api, theirs["id"], DeliveryStatus.DELIVERED, 2))
        await eventually(lambda: _count(api, mine["id"], DeliveryStatus.DELIVERED, 1))

        seen = (await tenant.get("/v1/stats")).json()
        assert seen["total"] == 1
        assert [e["endpoint_id"] for e in seen["by_endpoint"]] == [mine["id"]]
        assert [t["event_type"] for t in seen["by_event_type"]] == ["acme.order"]
        assert seen["latency"]["attempts"] == 1
        everything = (await admin.get("/v1/stats", params={"window": "10m"})).json()
        assert everything["total"] == 3
        assert everything["success_rate"] == 1.0
        assert [e["endpoint_id"] for e in everything["by_endpoint"]] == [theirs["id"], mine["id"]]
        top = (await admin.get("/v1/stats", params={"top": 1})).json()
        assert [e["endpoint_id"] for e in top["by_endpoint"]] == [theirs["id"]]
        problem(await admin.get("/v1/stats", params={"top": 0}), 422)
        only = (await admin.get("/v1/stats", params={"tenant_id": "acme"})).json()
        assert only["total"] == 1
        problem(await tenant.get("/v1/stats", params={"tenant_id": "default"}), 404)
