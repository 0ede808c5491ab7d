"""Secret rotation through the API, proven with real receivers: during the grace period a receiver
that verifies only the old secret and one that verifies only the new one both accept every
delivery; after it, only the new one does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from hookd.domain import errors
from hookd.domain.models import DeliveryStatus
from hookd.engine import Engine
from hookd.policy import rotation, signing
from hookd.store.port import DeliveryFilter
from support.api import Api, api_over, eventually, problem
from support.receiver import Received, Receiver, Reply

OLD = signing.generate_secret()
NEW = signing.generate_secret()
GRACE = 1.5  # seconds


def verifying(secret: str) -> Any:
    """A receiver script that accepts only requests signed with `secret` (Standard Webhooks'
    reference verifier), and answers 401 to anything else."""

    def script(request: Received, _n: int, _k: int) -> Reply:
        try:
            StandardWebhook(secret).verify(request.body, dict(request.headers))
        except WebhookVerificationError:
            return Reply(401)
        return Reply(200)

    return script


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    async with api_over(engine) as running:
        yield running


async def deliver_one(api: Api, endpoint_id: str, receiver: Receiver) -> tuple[str, Received]:
    """Publish one event to `endpoint_id`; wait for its one attempt; its status and request."""
    before = len(receiver.requests)
    async with api.client() as client:
        response = await client.post("/v1/events", json={"type": "order.filled", "payload": {}})
    event_id = response.json()["id"]
    await receiver.wait_for(lambda: len(receiver.requests) > before)
    ended = DeliveryFilter(
        event_id=event_id, statuses=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]
    )

    async def settled() -> Any:
        page = await api.engine.list_deliveries(None, ended, limit=5)
        return page.items

    (delivery,) = await eventually(settled)
    return delivery.status.value, receiver.requests[-1]


async def test_both_secrets_verify_during_the_grace_period_and_only_the_new_one_after(
    api: Api,
) -> None:
    retry_once = {"kind": "schedule", "delays": [0], "jitter": 0}
    async with (
        Receiver(verifying(OLD)) as old_only,
        Receiver(verifying(NEW)) as new_only,
        api.client() as client,
    ):
        created = await client.post(
            "/v1/endpoints",
            json={
                "url": old_only.url,
                "event_types": ["*"],
                "secret": OLD,
                "retry_policy": retry_once,
            },
        )
        endpoint_id = created.json()["id"]
        assert await deliver_one(api, endpoint_id, old_only) == ("delivered", old_only.requests[0])

        rotated = await client.post(
            f"/v1/endpoints/{endpoint_id}/secret/rotate",
            json={"grace_period": GRACE, "secret": NEW},
        )
        rotated_at = time.time()
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["secret"] == NEW
        old_ends = datetime.fromisoformat(rotated.json()["expires_at"]).timestamp()
        assert old_ends == pytest.approx(rotated_at + GRACE, abs=0.5)
        shown = (await client.get(f"/v1/endpoints/{endpoint_id}")).json()
        assert shown["secret_preview"] == signing.secret_preview(NEW)

        # during the grace period: each request carries two signatures; both receivers accept
        status, request = await deliver_one(api, endpoint_id, old_only)
        assert status == "delivered"
        assert len(request.headers["webhook-signature"].split()) == 2
        for secret in (OLD, NEW):
            StandardWebhook(secret).verify(request.body, dict(request.headers))
            signing.verify(secret, request.headers, request.body)
        await client.patch(f"/v1/endpoints/{endpoint_id}", json={"url": new_only.url})
        status, request = await deliver_one(api, endpoint_id, new_only)
        assert status == "delivered"
        assert len(request.headers["webhook-signature"].split()) == 2
        assert time.time() < old_ends, "the grace period ran out during the test: raise GRACE"

        # after it: one signature, the new one's; the old-only receiver refuses it
        await asyncio.sleep(max(0.0, old_ends - time.time()) + 0.1)
        status, request = await deliver_one(api, endpoint_id, new_only)
        assert status == "delivered"
        assert len(request.headers["webhook-signature"].split()) == 1
        StandardWebhook(NEW).verify(request.body, dict(request.headers))
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(OLD).verify(request.body, dict(request.headers))
        with pytest.raises(errors.VerificationError):
            signing.verify(OLD, request.headers, request.body)
        await client.patch(f"/v1/endpoints/{endpoint_id}", json={"url": old_only.url})
        assert (await deliver_one(api, endpoint_id, old_only))[0] == "failed"
        assert old_only.requests[-1].headers["webhook-signature"].count("v1,") == 1

    # the expired secret was pruned when the endpoint was next written (the PATCH above)
    stored = await api.engine.get_endpoint(None, endpoint_id)
    assert [s.value.reveal() for s in stored.secrets] == [NEW]


async def test_rotate_defaults_and_generated_secret(api: Api) -> None:
    async with api.client() as client:
        created = (
            await client.post(
                "/v1/endpoints", json={"url": "https://example.com/h", "event_types": ["*"]}
            )
        ).json()
        before = time.time()
        response = await client.post(f"/v1/endpoints/{created['id']}/secret/rotate")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"secret", "expires_at"}
        signing.validate_new_secret(body["secret"])
        assert body["secret"] != created["secret"]
        ends = datetime.fromisoformat(body["expires_at"]).timestamp()
        assert ends == pytest.approx(before + rotation.DEFAULT_GRACE, abs=5)
        stored = await api.engine.get_endpoint(None, created["id"])
        assert stored.signing_keys_at(time.time()) == [body["secret"], created["secret"]]
        assert stored.signing_keys_at(ends + 1) == [body["secret"]]

        # grace 0 retires the old secret at once
        retired = await client.post(
            f"/v1/endpoints/{created['id']}/secret/rotate", json={"grace_period": 0}
        )
        stored = await api.engine.get_endpoint(None, created["id"])
        assert [s.value.reveal() for s in stored.secrets] == [retired.json()["secret"]]


async def test_concurrent_rotations_and_changes_all_take_effect(api: Api) -> None:
    """Each request reads the endpoint and stores it whole: without the check that nothing
    changed it in between, concurrent ones undid each other (a rotated secret was shown to its
    caller but never stored, or a change was lost)."""
    async with api.client() as client:
        created = (
            await client.post(
                "/v1/endpoints", json={"url": "https://example.com/h", "event_types": ["*"]}
            )
        ).json()
        path = f"/v1/endpoints/{created['id']}"
        rotations = [client.post(path + "/secret/rotate") for _ in range(4)]
        changes = [client.patch(path, json={"description": f"change {i}"}) for i in range(4)]
        answers = await asyncio.gather(*rotations, *changes)
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    stored = await api.engine.get_endpoint(None, created["id"])
    shown = {a.json()["secret"] for a in answers[:4]}
    assert {s.value.reveal() for s in stored.secrets} == shown | {created["secret"]}
    assert stored.description in {f"change {i}" for i in range(4)}


async def test_rotate_refuses_bad_input(api: Api) -> None:
    async with api.client() as client:
        created = (
            await client.post(
                "/v1/endpoints",
                json={"url": "https://example.com/h", "event_types": ["*"], "secret": OLD},
            )
        ).json()
        path = f"/v1/endpoints/{created['id']}/secret/rotate"
        for body, where in [
            ({"grace_period": 604801}, "grace_period"),
            ({"grace_period": -1}, "grace_period"),
            ({"grace_period": "1h"}, "grace_period"),
            ({"secret": "not-a-secret"}, "secret"),
            ({"secret": "whsec_c2hvcnQ="}, "secret"),
            ({"secret": OLD}, "secret"),  # the secret in use
            ({"extra": True}, "extra"),
        ]:
            found = problem(await client.post(path, json=body), 422)
            assert [e["path"] for e in found["errors"]] == [where], body
        for _ in range(rotation.MAX_LIVE_SECRETS - 1):
            assert (await client.post(path)).status_code == 200
        problem(await client.post(path), 409)
        assert (await client.post(path, json={"grace_period": 0})).status_code == 200
