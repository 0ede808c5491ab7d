"""API rate limits on a real app over a real engine: per key, per client IP, the test-send limit,
the headers, and what is not limited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hookd.config import RateLimit, Settings
from hookd.engine import Engine
from support.api import Api, api_over, problem

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
SLOW = RateLimit(per_second=0.001, burst=3)  # no refill within a test


@pytest.fixture
def limits() -> dict[str, RateLimit | None]:
    return {"rate_limit_per_key": SLOW, "rate_limit_per_ip": RateLimit(0.001, 5)}


@pytest.fixture
async def api(settings: Settings, limits: dict[str, RateLimit | None]) -> AsyncIterator[Api]:
    async with (
        Engine(settings.replace(**limits), run_worker=False) as engine,
        api_over(engine) as running,
    ):
        yield running


def rate(response: object) -> tuple[str, str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    return tuple(headers[name] for name in RATE_HEADERS)  # type: ignore[return-value]


async def test_the_key_limit_answers_with_headers_then_429(api: Api) -> None:
    async with api.client() as client:
        answers = [await client.get("/v1/endpoints") for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    # the key's bucket (3) is stricter than the IP's (5): it answers
    assert [rate(r)[:2] for r in answers[:3]] == [("3", "2"), ("3", "1"), ("3", "0")]
    assert int(answers[0].headers["x-ratelimit-reset"]) >= 1
    refused = answers[3]
    body = problem(refused, 429)
    assert body["type"] == "https://hookd.dev/problems/too-many-requests"
    assert "retry in" in body["detail"]
    assert int(refused.headers["retry-after"]) >= 1
    assert rate(refused)[:2] == ("3", "0")


async def test_keys_have_their_own_buckets_but_share_the_ip_one(api: Api) -> None:
    async with api.client() as admin, api.client(api.tenant_key) as tenant:
        assert [(await admin.get("/v1/endpoints")).status_code for _ in range(3)] == [200] * 3
        assert (await admin.get("/v1/endpoints")).status_code == 429
        # the IP bucket (5) had 4 taken (the refused one took from the IP, not from the key)
        assert (await tenant.get("/v1/endpoints")).status_code == 200
        refused = await tenant.get("/v1/endpoints")
        problem(refused, 429)
        assert rate(refused)[:2] == ("5", "0")  # the IP's bucket refused
    async with api.client(api.tenant_key, ip="10.1.2.3") as elsewhere:
        assert (await elsewhere.get("/v1/endpoints")).status_code == 200


async def test_a_wrong_key_is_limited_exactly_like_a_valid_one(api: Api) -> None:
    async with (
        api.client("hk_not_a_key_at_all_0123456789abcdef", ip="10.0.0.1") as wrong,
        api.client(ip="10.0.0.2") as valid,
    ):
        wrong_answers = [await wrong.get("/v1/endpoints") for _ in range(4)]
        valid_answers = [await valid.get("/v1/endpoints") for _ in range(4)]
    assert [r.status_code for r in wrong_answers] == [401, 401, 401, 429]
    assert [r.status_code for r in valid_answers] == [200, 200, 200, 429]
    assert [rate(r)[:2] for r in wrong_answers] == [rate(r)[:2] for r in valid_answers]
    assert wrong_answers[3].json() == valid_answers[3].json()


async def test_requests_without_a_key_count_against_the_ip(api: Api) -> None:
    async with api.client(admin=False) as anonymous:
        answers = [await anonymous.get("/v1/endpoints") for _ in range(6)]
    assert [r.status_code for r in answers] == [401] * 5 + [429]
    assert rate(answers[0])[:2] == ("5", "4")


async def test_health_metrics_and_docs_are_not_limited(api: Api) -> None:
    async with api.client() as client:
        for _ in range(8):
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                response = await client.get(path)
                assert response.status_code == 200, path
                assert "x-ratelimit-limit" not in response.headers
        assert (await client.get("/v1/endpoints")).status_code == 200  # nothing was taken


@pytest.mark.parametrize(
    "limits", [{"rate_limit_per_key": RateLimit(1.0, 1), "rate_limit_per_ip": None}]
)
async def test_tokens_come_back_at_the_rate(api: Api) -> None:
    # 1/s: a loaded machine would need a whole second between the two to refill the bucket
    async with api.client() as client:
        assert (await client.get("/v1/endpoints")).status_code == 200
        refused = await client.get("/v1/endpoints")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"  # rounded up to whole seconds
        await asyncio.sleep(1.05)  # one token at 1/s
        assert (await client.get("/v1/endpoints")).status_code == 200


@pytest.mark.parametrize("limits", [{"rate_limit_per_key": None, "rate_limit_per_ip": None}])
async def test_no_limits_no_headers(api: Api) -> None:
    async with api.client() as client:
        for _ in range(20):
            response = await client.get("/v1/endpoints")
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize(
    "limits",
    [
        {
            "rate_limit_per_key": None,
            "rate_limit_per_ip": None,
            "rate_limit_test_send": RateLimit(0.001, 2),
        }
    ],
)
async def test_test_sends_have_a_tighter_limit_per_endpoint(api: Api) -> None:
    async with api.client() as client, api.client(api.tenant_key) as tenant:
        endpoints = []
        for _ in range(2):
            created = await client.post(
                "/v1/endpoints", json={"url": "http://127.0.0.1:9/", "event_types": ["*"]}
            )
            endpoints.append(created.json()["id"])
        first = f"/v1/endpoints/{endpoints[0]}/test"
        answers = [await client.post(first) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert [rate(r)[:2] for r in answers] == [("2", "1"), ("2", "0"), ("2", "0")]
        body = problem(answers[2], 429)
        assert "test sends" in body["detail"]
        assert int(answers[2].headers["retry-after"]) > 60
        # another endpoint has its own bucket; a foreign caller gets the 404, and takes nothing
        assert (await client.post(f"/v1/endpoints/{endpoints[1]}/test")).status_code == 200
        problem(await tenant.post(f"/v1/endpoints/{endpoints[1]}/test"), 404)
        assert (await client.post(f"/v1/endpoints/{endpoints[1]}/test")).status_code == 200


async def test_openapi_documents_the_limits(api: Api) -> None:
    async with api.client() as client:
        document = (await client.get("/openapi.json")).json()
    headers = document["components"]["headers"]
    assert set(headers) == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if not path.startswith("/v1/"):
                assert "429" not in responses, path
                continue
            too_many = responses["429"]
            assert too_many["headers"]["Retry-After"] == {
                "$ref": "#/components/headers/Retry-After"
            }
            assert too_many["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
            for response in responses.values():
                assert "X-RateLimit-Remaining" in response["headers"], path
