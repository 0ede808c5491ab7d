"""The HTTP API over a real engine on a real SQLite file (no worker: nothing is sent)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import hookd
from hookd import crypto
from hookd.api import create_app
from hookd.config import Settings
from hookd.domain import errors, ids
from hookd.domain.models import DEFAULT_TENANT, Secret
from hookd.engine import Engine
from hookd.store.port import ApiKey

ADMIN_KEY = "hk_test_admin_key_0123456789abcdefghij"
TENANT_KEY = "hk_test_tenant_key_0123456789abcdefghij"
MAX_PAYLOAD = 8 * 1024
BODY_LIMIT = MAX_PAYLOAD + 64 * 1024
PROBLEM = "application/problem+json"


def make_settings(path: Path) -> Settings:
    return Settings(
        db_path=path,
        secret_key=Secret(crypto.generate_key()),
        api_key=Secret(ADMIN_KEY),
        max_payload_bytes=MAX_PAYLOAD,
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = Engine(make_settings(tmp_path / "hookd.db"), run_worker=False)
    await engine.open()
    try:
        await engine.bootstrap_admin_key()
        await engine.store.add_api_key(
            ApiKey(
                id=ids.new_id(ids.API_KEY),
                prefix=crypto.api_key_prefix(TENANT_KEY),
                key_hash=crypto.hash_api_key(TENANT_KEY),
                tenant_id="acme",
                name="acme",
                created_at=time.time(),
            )
        )
        yield engine
    finally:
        await engine.close()


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(engine, manage_engine=False)


def _client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def tenant(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, TENANT_KEY) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, None) as client:
        yield client


def problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """Check `response` is a problem document with `status`; returns the document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://hookd.dev/problems/")
    if slug is not None:
        assert body["type"] == f"https://hookd.dev/problems/{slug}"
    assert body["title"]
    assert body["detail"]
    return body


def paths_of(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body["errors"]]


async def create_endpoint(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("url", "https://example.com/hook")
    fields.setdefault("event_types", ["order.*"])
    response = await client.post("/v1/endpoints", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def publish(client: httpx.AsyncClient, type: str = "order.filled", **extra: Any) -> Any:
    response = await client.post("/v1/events", json={"type": type, "payload": {"n": 1}, **extra})
    assert response.status_code == 202, response.text
    return response.json()


# authentication -------------------------------------------------------------------------------
V1_ROUTES = {
    ("POST", "/v1/endpoints"),
    ("GET", "/v1/endpoints"),
    ("GET", "/v1/endpoints/{endpoint_id}"),
    ("PATCH", "/v1/endpoints/{endpoint_id}"),
    ("DELETE", "/v1/endpoints/{endpoint_id}"),
    ("POST", "/v1/endpoints/{endpoint_id}/pause"),
    ("POST", "/v1/endpoints/{endpoint_id}/resume"),
    ("POST", "/v1/endpoints/{endpoint_id}/secret/rotate"),
    ("POST", "/v1/endpoints/{endpoint_id}/test"),
    ("GET", "/v1/endpoints/{endpoint_id}/stats"),
    ("GET", "/v1/endpoints/{endpoint_id}/health"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/{event_id}"),
    ("POST", "/v1/event-types"),
    ("GET", "/v1/event-types"),
    ("GET", "/v1/event-types/{name}"),
    ("PATCH", "/v1/event-types/{name}"),
    ("DELETE", "/v1/event-types/{name}"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{key_id}"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/deliveries/{delivery_id}"),
    ("POST", "/v1/deliveries/{delivery_id}/retry"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/replay"),
    ("DELETE", "/v1/dead-letters"),
}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer hk_wrong_key", "Basic YWRtaW46YWRtaW4=", "Bearer"]
)
async def test_every_v1_route_needs_a_valid_key(
    anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in sorted(V1_ROUTES):
        url = path.replace("{", "").replace("}", "")  # {endpoint_id} -> endpoint_id
        response = await anonymous.request(method, url, headers=headers)
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_admin_and_tenant_keys_are_accepted(
    client: httpx.AsyncClient, tenant: httpx.AsyncClient
) -> None:
    assert (await client.get("/v1/endpoints")).status_code == 200
    assert (await tenant.get("/v1/endpoints")).status_code == 200


async def test_health_and_docs_need_no_key(anonymous: httpx.AsyncClient) -> None:
    health = await anonymous.get("/healthz")
    assert health.json() == {"status": "ok", "version": hookd.__version__}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    assert (await anonymous.get("/openapi.json")).status_code == 200
    assert (await anonymous.get("/docs")).status_code == 200


# endpoints ------------------------------------------------------------------------------------
async def test_create_endpoint_shows_the_secret_once(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(
        client,
        headers={"X-Api-Token": "top-secret-value"},
        name="orders",
        metadata={"team": "core"},
        timeout=5,
        max_attempts=3,
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["id"].startswith("ep_")
    assert created["headers"] == {"X-Api-Token": "[redacted]"}
    assert created["timeout"] == 5.0
    assert created["retry_policy"]["kind"] == "schedule"
    assert len(created["retry_policy"]["delays"]) == 3
    assert created["status"] == "active"
    assert created["status_reason"] is None
    assert created["metadata"] == {"team": "core"}
    assert created["created_at"].endswith("Z")
    preview = created["secret_preview"]
    assert preview.startswith(secret[:10])
    assert "…" in preview

    read = await client.get(f"/v1/endpoints/{created['id']}")
    listed = await client.get("/v1/endpoints")
    for response in (read, listed):
        assert response.status_code == 200
        assert secret not in response.text
        assert secret.removeprefix("whsec_") not in response.text
        assert "top-secret-value" not in response.text
    body = read.json()
    assert "secret" not in body
    assert body["secret_preview"] == preview
    assert body["headers"] == {"X-Api-Token": "[redacted]"}
    assert {k: v for k, v in created.items() if k != "secret"} == body


async def test_create_endpoint_with_a_given_secret(client: httpx.AsyncClient) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    created = await create_endpoint(client, secret=secret)
    assert created["secret"] == secret
    assert created["secret_preview"] == "whsec_MfKQ…aSw"


async def test_endpoint_list_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    ids_created = {(await create_endpoint(client, name=f"e{i}"))["id"] for i in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/v1/endpoints", params=params)).json()
        sizes.append(len(page["data"]))
        seen.extend(e["id"] for e in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert len(seen) == 5
    assert set(seen) == ids_created


@pytest.mark.parametrize("limit", ["0", "501", "many"])
async def test_endpoint_list_limit_is_checked(client: httpx.AsyncClient, limit: str) -> None:
    body = problem(await client.get("/v1/endpoints", params={"limit": limit}), 422)
    assert paths_of(body) == ["limit"]


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(
        client,
        name="orders",
        description="all orders",
        timeout=5,
        headers={"X-Key": "v"},
        retry_policy={"kind": "exponential", "initial": 1, "max_attempts": 4},
    )
    url = f"/v1/endpoints/{created['id']}"

    response = await client.patch(url, json={"name": "renamed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "renamed"
    assert body["description"] == "all orders"
    assert body["timeout"] == 5.0
    assert body["headers"] == {"X-Key": "[redacted]"}
    assert body["retry_policy"]["kind"] == "exponential"
    assert body["url"] == created["url"]

    response = await client.patch(
        url, json={"description": None, "timeout": None, "retry_policy": None}
    )
    body = response.json()
    assert body["name"] == "renamed"
    assert body["description"] is None
    assert body["timeout"] == 15.0  # the default
    assert body["retry_policy"]["kind"] == "schedule"  # the default

    response = await client.patch(
        url, json={"event_types": ["user.*", "order.filled"], "headers": {}, "max_attempts": 2}
    )
    body = response.json()
    assert body["event_types"] == ["user.*", "order.filled"]
    assert body["headers"] == {}
    assert len(body["retry_policy"]["delays"]) == 2

    assert (await client.get(url)).json() == body


async def test_patch_status(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(client)
    url = f"/v1/endpoints/{created['id']}"
    paused = (await client.patch(url, json={"status": "paused"})).json()
    assert paused["status"] == "paused"
    assert paused["status_reason"]
    active = (await client.patch(url, json={"status": "active"})).json()
    assert active["status"] == "active"
    assert active["status_reason"] is None
    body = problem(await client.patch(url, json={"status": "sleeping"}), 422)
    assert paths_of(body) == ["status"]


async def test_patch_rejects_null_where_a_value_is_needed(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(client)
    response = await client.patch(
        f"/v1/endpoints/{created['id']}",
        json={"url": None, "event_types": None, "status": None, "secret": "whsec_x"},
    )
    body = problem(response, 422, "validation-error")
    assert sorted(paths_of(body)) == ["event_types", "secret", "status", "url"]
    assert "not null" in body["errors"][0]["message"]


async def test_patch_checks_values(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(client)
    response = await client.patch(
        f"/v1/endpoints/{created['id']}", json={"url": "ftp://x", "timeout": 0}
    )
    body = problem(response, 422)
    assert sorted(paths_of(body)) == ["timeout", "url"]


async def test_delete_endpoint(client: httpx.AsyncClient) -> None:
    created = await create_endpoint(client)
    url = f"/v1/endpoints/{created['id']}"
    response = await client.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    problem(await client.get(url), 404, "not-found")
    problem(await client.delete(url), 404, "not-found")
    problem(await client.patch(url, json={"name": "x"}), 404, "not-found")


async def test_validation_lists_every_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/endpoints",
        json={
            "url": "ftp://example.com/hook",
            "event_types": ["order.*", "bad pattern!"],
            "headers": {"Content-Type": "text/plain"},
        },
    )
    body = problem(response, 422, "validation-error")
    assert paths_of(body) == ["url", "event_types[1]", "headers.Content-Type"]
    assert all(e["message"] for e in body["errors"])
    assert "http or https" in body["errors"][0]["message"]


async def test_request_shape_errors_list_every_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/endpoints",
        json={"event_types": "order.*", "timeout": "5", "colour": "blue"},
    )
    body = problem(response, 422, "validation-error")
    assert sorted(paths_of(body)) == ["colour", "event_types", "timeout", "url"]
    messages = {e["path"]: e["message"] for e in body["errors"]}
    assert messages["url"] == "is required"
    assert messages["colour"] == "is not a known field"


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/endpoints", content=b'{"url": ', headers={"content-type": "application/json"}
    )
    body = problem(response, 400, "malformed-request")
    assert "not valid JSON" in body["detail"]
    assert "errors" not in body


async def test_a_body_that_is_not_utf8_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/endpoints", content=b'{"url": "\xff"}', headers={"content-type": "application/json"}
    )
    problem(response, 400, "malformed-request")


async def test_a_body_that_is_not_an_object_is_a_422(client: httpx.AsyncClient) -> None:
    body = problem(await client.post("/v1/endpoints", json=["https://example.com"]), 422)
    assert body["errors"] == [{"path": "body", "message": "must be a JSON object"}]
    body = problem(await client.post("/v1/endpoints"), 422)
    assert body["errors"] == [{"path": "body", "message": "a JSON body is required"}]


# body size ------------------------------------------------------------------------------------
async def test_oversized_body_with_content_length_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=b"x" * (BODY_LIMIT + 1),
        headers={"content-type": "application/json"},
    )
    problem(response, 413, "payload-too-large")


async def test_oversized_chunked_body_is_refused_without_reading_it_all(
    client: httpx.AsyncClient,
) -> None:
    chunk = b"x" * 4096
    total_chunks = 200
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(total_chunks):
            sent += 1
            yield chunk

    response = await client.post(
        "/v1/events", content=body(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    problem(response, 413, "payload-too-large")
    assert sent <= BODY_LIMIT // len(chunk) + 2 < total_chunks


async def test_an_invalid_content_length_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "two"},
    )
    problem(response, 400, "malformed-request")


async def test_a_body_just_under_the_limit_passes_the_guard(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=b" " * (BODY_LIMIT - 2) + b"{}",
        headers={"content-type": "application/json"},
    )
    problem(response, 422)  # read and parsed: an empty object lacks type and payload


async def test_oversized_payload_is_refused_by_the_engine(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", json={"type": "order.filled", "payload": {"blob": "x" * MAX_PAYLOAD}}
    )
    body = problem(response, 413, "payload-too-large")
    assert str(MAX_PAYLOAD) in body["detail"]


# events ---------------------------------------------------------------------------------------
async def test_publish_fans_out_to_matching_endpoints(client: httpx.AsyncClient) -> None:
    await create_endpoint(client, event_types=["order.*"])
    await create_endpoint(client, event_types=["order.filled"])
    await create_endpoint(client, event_types=["user.*"])
    accepted = await publish(client, "order.filled")
    assert accepted["deliveries"] == 2
    assert accepted["duplicate"] is False
    assert accepted["type"] == "order.filled"
    assert accepted["id"].startswith("evt_")
    assert (await publish(client, "invoice.paid"))["deliveries"] == 0


async def test_get_event(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        json={
            "type": "order.filled",
            "payload": {"qty": 3, "nested": {"ok": True}, "list": [1, "a", None]},
            "occurred_at": "2024-05-01T12:00:00Z",
            "idempotency_key": "k-1",
        },
    )
    event_id = response.json()["id"]
    event = (await client.get(f"/v1/events/{event_id}")).json()
    assert event == {
        "id": event_id,
        "tenant_id": "default",
        "type": "order.filled",
        "payload": {"qty": 3, "nested": {"ok": True}, "list": [1, "a", None]},
        "occurred_at": "2024-05-01T12:00:00.000Z",
        "created_at": response.json()["created_at"],
        "idempotency_key": "k-1",
        "priority": None,
    }
    problem(await client.get("/v1/events/evt_missing"), 404, "not-found")


async def test_event_is_checked(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", json={"type": "not a type", "payload": {}, "idempotency_key": ""}
    )
    body = problem(response, 422)
    assert paths_of(body) == ["type", "idempotency_key"]
    response = await client.post(
        "/v1/events",
        json={"type": "a.b", "payload": [1], "occurred_at": "2024-05-01T12:00:00"},
    )
    body = problem(response, 422)
    assert sorted(paths_of(body)) == ["occurred_at", "payload"]


async def test_idempotency_key_in_the_header(client: httpx.AsyncClient) -> None:
    await create_endpoint(client)
    request = {"type": "order.filled", "payload": {"n": 1}}
    first = await client.post("/v1/events", json=request, headers={"Idempotency-Key": "abc"})
    again = await client.post("/v1/events", json=request, headers={"Idempotency-Key": "abc"})
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["duplicate"] is True
    assert first.json()["duplicate"] is False
    # the same key in the body is the same key
    in_body = await client.post("/v1/events", json={**request, "idempotency_key": "abc"})
    assert in_body.status_code == 200
    assert in_body.json()["id"] == first.json()["id"]
    deliveries = (await client.get("/v1/deliveries")).json()["data"]
    assert len(deliveries) == 1


async def test_idempotency_key_in_the_body(client: httpx.AsyncClient) -> None:
    first = await publish(client, idempotency_key="k-9")
    again = await client.post(
        "/v1/events", json={"type": "order.filled", "payload": {}, "idempotency_key": "k-9"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["duplicate"] is True


async def test_idempotency_key_header_and_field_must_agree(client: httpx.AsyncClient) -> None:
    request = {"type": "order.filled", "payload": {}, "idempotency_key": "a"}
    body = problem(
        await client.post("/v1/events", json=request, headers={"Idempotency-Key": "b"}), 422
    )
    assert paths_of(body) == ["idempotency_key"]
    same = await client.post("/v1/events", json=request, headers={"Idempotency-Key": "a"})
    assert same.status_code == 202


# routing errors -------------------------------------------------------------------------------
async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    problem(await client.get("/v1/nothing-here"), 404, "not-found")
    problem(await client.get("/"), 404, "not-found")


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/endpoints")
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"]  # (Starlette names the first matching route's methods)
    problem(await client.post("/healthz"), 405, "method-not-allowed")


# deliveries -----------------------------------------------------------------------------------
async def test_delivery_list_filters(client: httpx.AsyncClient) -> None:
    orders = await create_endpoint(client, event_types=["order.*"])
    everything = await create_endpoint(client, event_types=["*"])
    filled = await publish(client, "order.filled")
    await publish(client, "user.created")

    async def listed(**params: Any) -> list[dict[str, Any]]:
        response = await client.get("/v1/deliveries", params=params)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    everyone = await listed()
    assert len(everyone) == 3
    assert {d["status"] for d in everyone} == {"pending"}
    delivery = everyone[0]
    assert set(delivery) == {
        "id",
        "event_id",
        "endpoint_id",
        "priority",
        "fallback",
        "event_type",
        "status",
        "attempts",
        "total_attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "updated_at",
    }
    assert delivery["id"].startswith("dlv_")
    assert delivery["attempts"] == 0

    assert {d["endpoint_id"] for d in await listed(endpoint_id=orders["id"])} == {orders["id"]}
    assert len(await listed(endpoint_id=everything["id"])) == 2
    assert len(await listed(event_id=filled["id"])) == 2
    assert {d["event_type"] for d in await listed(event_type="user.created")} == {"user.created"}
    assert len(await listed(status="pending")) == 3
    assert await listed(status="delivered") == []

    await client.patch(f"/v1/endpoints/{orders['id']}", json={"status": "paused"})
    parked = await listed(status="parked")
    assert [d["endpoint_id"] for d in parked] == [orders["id"]]
    assert len(await listed(status="pending,parked")) == 3
    assert len(await listed(status=["pending", "parked"])) == 3
    assert len(await listed(status="pending", endpoint_id=orders["id"])) == 0

    page = (await client.get("/v1/deliveries", params={"limit": 2})).json()
    assert len(page["data"]) == 2
    assert page["next_cursor"] is not None
    rest = await listed(cursor=page["next_cursor"])
    assert len(rest) == 1

    body = problem(await client.get("/v1/deliveries", params={"status": "pending,lost"}), 422)
    assert paths_of(body) == ["status"]
    assert "'lost'" in body["errors"][0]["message"]


async def test_delivery_detail_and_retry(client: httpx.AsyncClient) -> None:
    await create_endpoint(client)
    await publish(client)
    (delivery,) = (await client.get("/v1/deliveries")).json()["data"]

    detail = (await client.get(f"/v1/deliveries/{delivery['id']}")).json()
    assert detail["attempts"] == 0
    assert detail["attempt_log"] == []
    assert {k: v for k, v in detail.items() if k != "attempt_log"} == delivery

    response = await client.post(f"/v1/deliveries/{delivery['id']}/retry")
    assert response.status_code == 202
    assert response.json()["id"] == delivery["id"]
    assert response.json()["status"] == "pending"

    problem(await client.get("/v1/deliveries/dlv_missing"), 404, "not-found")
    problem(await client.post("/v1/deliveries/dlv_missing/retry"), 404, "not-found")


# dead letters ---------------------------------------------------------------------------------
async def test_dead_letters_on_an_empty_set(client: httpx.AsyncClient) -> None:
    await create_endpoint(client)
    await publish(client)  # pending: not a dead letter
    listed = await client.get("/v1/dead-letters")
    assert listed.json() == {"data": [], "next_cursor": None}

    for request in (
        client.post("/v1/dead-letters/replay"),
        client.post("/v1/dead-letters/replay", json={}),
        client.post(
            "/v1/dead-letters/replay",
            json={
                "delivery_ids": ["dlv_x"],
                "endpoint_id": "ep_x",
                "event_type": "order.filled",
                "since": "2024-01-01T00:00:00Z",
                "limit": 10,
            },
        ),
    ):
        response = await request
        assert response.status_code == 202, response.text
        assert response.json() == {"replayed": 0}

    for older_than in ("30d", "12h", "90m", "45s", "3600", "0"):
        response = await client.delete("/v1/dead-letters", params={"older_than": older_than})
        assert response.status_code == 200, response.text
        assert response.json() == {"purged": 0}
    # pending deliveries are not purged
    assert len((await client.get("/v1/deliveries")).json()["data"]) == 1


@pytest.mark.parametrize("older_than", ["", "abc", "-5", "10x", "1.5d", "d", "5 days"])
async def test_purge_rejects_a_bad_duration(client: httpx.AsyncClient, older_than: str) -> None:
    response = await client.delete("/v1/dead-letters", params={"older_than": older_than})
    body = problem(response, 422, "validation-error")
    assert paths_of(body) == ["older_than"]


async def test_purge_needs_a_duration(client: httpx.AsyncClient) -> None:
    body = problem(await client.delete("/v1/dead-letters"), 422)
    assert body["errors"] == [{"path": "older_than", "message": "is required"}]


async def test_replay_rejects_unknown_fields(client: httpx.AsyncClient) -> None:
    body = problem(
        await client.post("/v1/dead-letters/replay", json={"all": True, "limit": 0}), 422
    )
    assert sorted(paths_of(body)) == ["all", "limit"]


# tenants --------------------------------------------------------------------------------------
async def test_a_tenant_key_sees_only_its_tenant(
    engine: Engine, client: httpx.AsyncClient, tenant: httpx.AsyncClient
) -> None:
    admins = await create_endpoint(client)
    acmes = await create_endpoint(tenant)
    assert (await engine.get_endpoint(None, admins["id"])).tenant_id == DEFAULT_TENANT
    assert (await engine.get_endpoint(None, acmes["id"])).tenant_id == "acme"

    assert [e["id"] for e in (await tenant.get("/v1/endpoints")).json()["data"]] == [acmes["id"]]
    admin_view = {e["id"] for e in (await client.get("/v1/endpoints")).json()["data"]}
    assert admin_view == {admins["id"], acmes["id"]}
    problem(await tenant.get(f"/v1/endpoints/{admins['id']}"), 404)
    problem(await tenant.patch(f"/v1/endpoints/{admins['id']}", json={"name": "x"}), 404)
    problem(await tenant.delete(f"/v1/endpoints/{admins['id']}"), 404)

    admin_event = await publish(client)
    acme_event = await publish(tenant)
    assert admin_event["deliveries"] == 1  # the default tenant's endpoint only
    assert acme_event["deliveries"] == 1
    problem(await tenant.get(f"/v1/events/{admin_event['id']}"), 404)
    assert (await client.get(f"/v1/events/{acme_event['id']}")).status_code == 200
    acme_deliveries = (await tenant.get("/v1/deliveries")).json()["data"]
    assert [d["event_id"] for d in acme_deliveries] == [acme_event["id"]]
    (admin_delivery,) = (
        await client.get("/v1/deliveries", params={"event_id": admin_event["id"]})
    ).json()["data"]
    problem(await tenant.get(f"/v1/deliveries/{admin_delivery['id']}"), 404)
    problem(await tenant.post(f"/v1/deliveries/{admin_delivery['id']}/retry"), 404)


# OpenAPI --------------------------------------------------------------------------------------
async def test_openapi_lists_every_route(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    assert document["info"] == {
        "title": "hookd",
        "version": hookd.__version__,
        "description": document["info"]["description"],
    }
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == V1_ROUTES | {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}

    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if path.startswith("/v1"):
                assert operation["security"] == [{"ApiKey": []}]
                assert "401" in responses
            for status, response in responses.items():
                if status.startswith("4") or status.startswith("5"):
                    assert response["content"] == {PROBLEM: {"schema": problem_ref}}


async def test_openapi_shows_request_constraints(anonymous: httpx.AsyncClient) -> None:
    schemas = (await anonymous.get("/openapi.json")).json()["components"]["schemas"]
    create = schemas["EndpointCreate"]
    assert create["additionalProperties"] is False
    assert set(create["required"]) == {"url", "event_types"}
    assert create["properties"]["url"]["maxLength"] == 2048
    assert create["properties"]["event_types"]["minItems"] == 1
    update = schemas["EndpointUpdate"]
    assert "required" not in update
    assert update["properties"]["url"]["type"] == "string"  # not nullable
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]


# unexpected errors ----------------------------------------------------------------------------
async def test_unexpected_errors_are_generic_500s(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("s3cr3t internals")

    async def store_error() -> None:
        raise errors.StoreError("sqlite write failed: disk I/O error at /var/secret")

    app.add_api_route("/boom", boom)
    app.add_api_route("/store-error", store_error)
    with caplog.at_level(logging.ERROR, logger="hookd.api"):
        for url in ("/boom", "/store-error"):
            response = await client.get(url)
            body = problem(response, 500, "internal-error")
            assert "s3cr3t" not in response.text
            assert "secret" not in response.text
            assert "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "hookd.api"]
    assert len(logged) == 2
    assert logged[0].exc_info is not None
    assert "s3cr3t internals" in str(logged[0].exc_info[1])
    assert body["detail"]


async def test_store_unavailable_is_a_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def down() -> None:
        raise errors.StoreUnavailable("connection refused to db.internal:5432")

    app.add_api_route("/down", down)
    response = await client.get("/down")
    problem(response, 503, "service-unavailable")
    assert "db.internal" not in response.text


async def test_conflict_is_a_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def conflict() -> None:
        raise errors.Conflict("delivery dlv_1 is being sent right now")

    app.add_api_route("/conflict", conflict)
    body = problem(await client.get("/conflict"), 409, "conflict")
    assert body["detail"] == "delivery dlv_1 is being sent right now"


# lifespan and readiness -----------------------------------------------------------------------
async def test_lifespan_opens_and_closes_the_engine(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "own.db")
    engine = Engine(settings, run_worker=False)
    started: list[Engine] = []

    async def on_startup(opened: Engine) -> None:
        await opened.bootstrap_admin_key()
        started.append(opened)

    app = create_app(engine, on_startup=on_startup)
    assert app.state.engine is engine
    async with app.router.lifespan_context(app):
        assert started == [engine]
        async with _client(app, ADMIN_KEY) as client:
            assert (await client.get("/v1/endpoints")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
    # closed: the database file is free for another engine
    async with Engine(settings, run_worker=False) as again:
        assert (await again.authenticate(ADMIN_KEY)).tenant_id is None


async def test_readyz_is_503_while_the_worker_is_not_running(tmp_path: Path) -> None:
    engine = Engine(make_settings(tmp_path / "worker.db"), run_worker=True)
    await engine.store.open()  # the store only: the worker is not started
    try:
        async with _client(create_app(engine, manage_engine=False), None) as client:
            body = problem(await client.get("/readyz"), 503, "service-unavailable")
            assert "worker" in body["detail"]
    finally:
        await engine.close()
