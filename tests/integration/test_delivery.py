"""The engine against real receivers on 127.0.0.1 and a real SQLite database."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from hookd.config import Settings
from hookd.domain.models import DEFAULT_TENANT, DeliveryStatus, EndpointStatus
from hookd.engine import Engine, EventInput
from hookd.policy import signing
from hookd.store.port import DeliveryFilter
from support.receiver import Receiver, Reply, always, sequence

T = DEFAULT_TENANT
FAST = {"kind": "schedule", "delays": [0, 0.2, 0.2, 0.2], "jitter": 0}


async def wait_status(
    engine: Engine, delivery_filter: DeliveryFilter, count: int, timeout: float = 10.0
) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        page = await engine.list_deliveries(None, delivery_filter, limit=500)
        if len(page.items) >= count:
            return page.items
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(page.items)} of {count} deliveries in {delivery_filter}"
            )
        await asyncio.sleep(0.05)


def delivered(endpoint_id: str | None = None) -> DeliveryFilter:
    return DeliveryFilter(statuses=[DeliveryStatus.DELIVERED], endpoint_id=endpoint_id)


async def test_delivers_signed_standard_webhooks_body(engine: Engine) -> None:
    async with Receiver() as receiver:
        endpoint, secret = await engine.create_endpoint(
            T, url=receiver.url, event_types=["order.*"], headers={"X-Team": "payments"}
        )
        result = await engine.publish(T, "order.filled", {"order": 42, "price": "10.5"})
        assert result.deliveries == 1
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
        request = receiver.requests[0]
        body = request.json()
        assert body["type"] == "order.filled"
        assert body["data"] == {"order": 42, "price": "10.5"}
        assert body["timestamp"].endswith("Z")
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("hookd/")
        assert request.headers["x-team"] == "payments"
        assert request.id.startswith("dlv_")
        # our verifier and both reference verifiers accept the real request
        signing.verify(secret, request.headers, request.body)
        assert StandardWebhook(secret).verify(request.body, request.headers)["data"]["order"] == 42
        SvixWebhook(secret).verify(request.body, request.headers)  # raises when invalid
        # a tampered body is rejected by the reference verifier too
        with pytest.raises(Exception, match=r"(?i)signature"):
            StandardWebhook(secret).verify(request.body + b" ", request.headers)
        with pytest.raises(Exception, match=r"(?i)signature"):
            SvixWebhook(secret).verify(request.body + b" ", request.headers)
        await wait_status(engine, delivered(endpoint.id), 1)


async def test_fan_out_only_to_matching_endpoints(engine: Engine) -> None:
    async with Receiver() as a, Receiver() as b, Receiver() as c:
        await engine.create_endpoint(T, url=a.url, event_types=["order.*"])
        await engine.create_endpoint(T, url=b.url, event_types=["order.filled"])
        await engine.create_endpoint(T, url=c.url, event_types=["balance.updated"])
        assert (await engine.publish(T, "order.filled", {})).deliveries == 2
        assert (await engine.publish(T, "order.canceled", {})).deliveries == 1
        assert (await engine.publish(T, "nobody.listens", {})).deliveries == 0
        await a.wait_for(lambda: len(a.requests) == 2)
        await b.wait_for(lambda: len(b.requests) == 1)
        await asyncio.sleep(0.2)
        assert c.requests == []


async def test_500_then_200_is_retried_with_the_same_webhook_id(engine: Engine) -> None:
    async with Receiver(sequence(500, 503, 200)) as receiver:
        endpoint, secret = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], retry_policy=FAST
        )
        await engine.publish(T, "a.b", {"n": 1})
        (item,) = await wait_status(engine, delivered(endpoint.id), 1)
        assert [r.id for r in receiver.requests] == [item.id] * 3
        # each try is signed afresh for its own timestamp and still verifies
        for request in receiver.requests:
            signing.verify(secret, request.headers, request.body)
        delivery, attempts = await engine.get_delivery(None, item.id)
        assert [a.status_code for a in attempts] == [500, 503, 200]
        assert [a.outcome for a in attempts] == ["retry", "retry", "success"]
        assert [a.number for a in attempts] == [1, 2, 3]
        assert delivery.total_attempts == 3
        assert attempts[0].request_headers["webhook-id"] == item.id


async def test_400_fails_without_retry(engine: Engine) -> None:
    async with Receiver(always(400, body=b"bad payload")) as receiver:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], retry_policy=FAST
        )
        await engine.publish(T, "a.b", {})
        failed = DeliveryFilter(statuses=[DeliveryStatus.FAILED], endpoint_id=endpoint.id)
        (item,) = await wait_status(engine, failed, 1)
        await asyncio.sleep(0.5)  # longer than the whole retry schedule
        assert len(receiver.requests) == 1
        _, attempts = await engine.get_delivery(None, item.id)
        assert attempts[0].status_code == 400
        assert attempts[0].response_body == "bad payload"
        # it is a dead letter, and replay sends it again
        page = await engine.list_deliveries(None, DeliveryFilter(statuses=["failed", "dead"]))
        assert [d.id for d in page.items] == [item.id]


async def test_410_disables_the_endpoint_and_parks_its_deliveries(engine: Engine) -> None:
    async with Receiver(always(410)) as receiver:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], retry_policy=FAST
        )
        await engine.publish(T, "a.b", {})
        parked = DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id)
        await wait_status(engine, parked, 1)
        current = await engine.get_endpoint(None, endpoint.id)
        assert current.status is EndpointStatus.DISABLED
        assert current.status_reason is not None and "410" in current.status_reason
        # later events are kept, parked, not sent
        await engine.publish(T, "a.c", {})
        await wait_status(engine, parked, 2)
        await asyncio.sleep(0.2)
        assert len(receiver.requests) == 1
        # re-enabling resumes every parked delivery
        receiver.script = always(200)
        await engine.update_endpoint(None, endpoint.id, status=EndpointStatus.ACTIVE)
        await wait_status(engine, delivered(endpoint.id), 2)
        # the endpoint.disabled event was not made for the disabled endpoint itself
        assert all(r.json()["type"] != "endpoint.disabled" for r in receiver.requests)


async def test_retry_after_delays_the_retry(engine: Engine) -> None:
    def script(_r: Any, _n: int, k: int) -> Reply:
        return Reply(429, headers={"Retry-After": "2"}) if k == 1 else Reply(200)

    async with Receiver(script) as receiver:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], retry_policy=FAST
        )
        await engine.publish(T, "a.b", {})
        await wait_status(engine, delivered(endpoint.id), 1, timeout=10)
        first, second = receiver.requests
        assert second.at - first.at >= 2.0


async def test_dead_receiver_ends_in_dead_letters_and_replay_delivers(engine: Engine) -> None:
    receiver = Receiver()
    async with receiver:
        url = receiver.url
    # the receiver is gone: connections are refused
    endpoint, _ = await engine.create_endpoint(T, url=url, event_types=["*"], retry_policy=FAST)
    await engine.publish(T, "a.b", {"x": 1})
    dead = DeliveryFilter(statuses=[DeliveryStatus.DEAD], endpoint_id=endpoint.id)
    (item,) = await wait_status(engine, dead, 1)
    _, attempts = await engine.get_delivery(None, item.id)
    assert len(attempts) == 4
    assert all(
        a.status_code is None and a.error and a.error.startswith("connection") for a in attempts
    )
    # the receiver comes back on the same port; replay delivers it
    revived = Receiver()
    revived.port = receiver.port
    async with revived:
        assert await engine.replay_dead_letters(None, endpoint_id=endpoint.id) == 1
        await wait_status(engine, delivered(endpoint.id), 1)
        assert revived.requests[0].id == item.id
        assert revived.requests[0].json()["data"] == {"x": 1}
    delivery, attempts = await engine.get_delivery(None, item.id)
    assert delivery.total_attempts == 5 and attempts[-1].status_code == 200


async def test_timeout_is_retried(settings: Settings) -> None:
    async with Engine(settings) as engine, Receiver(sequence(200)) as receiver:
        receiver.script = lambda _r, _n, k: Reply(200, delay=2.0 if k == 1 else 0)
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], timeout=0.3, retry_policy=FAST
        )
        await engine.publish(T, "a.b", {})
        (item,) = await wait_status(engine, delivered(endpoint.id), 1)
        _, attempts = await engine.get_delivery(None, item.id)
        assert attempts[0].error is not None and attempts[0].error.startswith("timeout")
        assert attempts[0].duration_ms < 1500


async def test_redirects_are_not_followed(engine: Engine) -> None:
    async with (
        Receiver() as target,
        Receiver(always(302, headers={"Location": "http://127.0.0.1:1/"})) as redirector,
    ):
        target.script = always(200)
        redirector.script = always(302, headers={"Location": target.url})
        endpoint, _ = await engine.create_endpoint(T, url=redirector.url, event_types=["*"])
        await engine.publish(T, "a.b", {})
        failed = DeliveryFilter(statuses=[DeliveryStatus.FAILED], endpoint_id=endpoint.id)
        await wait_status(engine, failed, 1)
        assert target.requests == []


async def test_response_excerpt_is_bounded(engine: Engine) -> None:
    big = b"x" * 100_000
    async with Receiver(always(200, body=big)) as receiver:
        endpoint, _ = await engine.create_endpoint(T, url=receiver.url, event_types=["*"])
        await engine.publish(T, "a.b", {})
        (item,) = await wait_status(engine, delivered(endpoint.id), 1)
        _, attempts = await engine.get_delivery(None, item.id)
        assert attempts[0].response_body == "x" * engine.settings.response_excerpt_bytes


async def test_private_addresses_are_refused_unless_allowed(settings: Settings) -> None:
    async with (
        Engine(settings.replace(allow_private_networks=())) as engine,
        Receiver() as receiver,
    ):
        for url in (receiver.url, f"http://localhost:{receiver.port}/hook"):
            endpoint, _ = await engine.create_endpoint(T, url=url, event_types=["*"])
            await engine.publish(T, "a.b", {})
            failed = DeliveryFilter(statuses=[DeliveryStatus.FAILED], endpoint_id=endpoint.id)
            (item,) = await wait_status(engine, failed, 1)
            _, attempts = await engine.get_delivery(None, item.id)
            assert attempts[0].error is not None
            assert attempts[0].error.startswith("blocked")
        assert receiver.requests == []


async def test_custom_header_values_are_redacted_in_attempt_logs(engine: Engine) -> None:
    async with Receiver() as receiver:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], headers={"Authorization": "Bearer s3cr3t"}
        )
        await engine.publish(T, "a.b", {})
        (item,) = await wait_status(engine, delivered(endpoint.id), 1)
        assert receiver.requests[0].headers["authorization"] == "Bearer s3cr3t"
        _, attempts = await engine.get_delivery(None, item.id)
        assert attempts[0].request_headers["Authorization"] == "[redacted]"
        assert "s3cr3t" not in orjson.dumps(dict(attempts[0].request_headers)).decode()


async def test_paused_endpoint_parks_and_resume_delivers(engine: Engine) -> None:
    async with Receiver() as receiver:
        endpoint, _ = await engine.create_endpoint(T, url=receiver.url, event_types=["*"])
        await engine.update_endpoint(None, endpoint.id, status=EndpointStatus.PAUSED)
        for i in range(5):
            await engine.publish(T, "a.b", {"i": i})
        parked = DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id)
        await wait_status(engine, parked, 5)
        await asyncio.sleep(0.2)
        assert receiver.requests == []
        await engine.update_endpoint(None, endpoint.id, status=EndpointStatus.ACTIVE)
        await wait_status(engine, delivered(endpoint.id), 5)
        assert sorted(r.json()["data"]["i"] for r in receiver.requests) == list(range(5))


async def test_graceful_stop_finishes_in_flight_and_releases_the_rest(settings: Settings) -> None:
    slow = Receiver(always(200, delay=0.5))
    async with slow:
        engine = Engine(settings)
        await engine.open()
        endpoint, _ = await engine.create_endpoint(T, url=slow.url, event_types=["*"])
        await engine.publish(T, "a.b", {})
        await slow.wait_for(lambda: len(slow.requests) == 1)
        await engine.close()  # waits for the in-flight request (0.5 s < grace)
    async with Engine(settings, run_worker=False) as reader:
        page = await reader.list_deliveries(None, delivered(endpoint.id))
        assert len(page.items) == 1


async def test_claiming_ahead_keeps_the_worker_concurrency(settings: Settings) -> None:
    """The worker claims a batch ahead of its free slots, and those wait here for a slot: never
    more than `concurrency` requests are out at once, over every endpoint, and every delivery
    is still sent exactly once."""
    narrow = settings.replace(
        worker=dataclasses.replace(settings.worker, concurrency=3, batch_size=4)
    )
    slow = always(200, delay=0.05)
    async with Engine(narrow) as engine, Receiver(slow) as receiver:
        assert engine.worker is not None
        for path in ("a", "b"):  # two endpoints, one receiver counting what is out at once
            await engine.create_endpoint(T, url=f"{receiver.url}/{path}", event_types=["*"])
        ahead = 0

        async def watch() -> None:
            nonlocal ahead
            while True:
                assert engine.worker is not None
                ahead = max(ahead, engine.worker.prefetched)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            await engine.publish_batch(T, [EventInput("a.b", {"i": i}) for i in range(20)])
            await wait_status(engine, delivered(), 40)
        finally:
            watcher.cancel()
        assert receiver.max_in_flight == 3
        assert len(receiver.requests) == len(receiver.ids()) == 40
        assert sorted(r.path for r in receiver.requests) == ["/hook/a"] * 20 + ["/hook/b"] * 20
        assert ahead > 0  # some waited here, claimed ahead of a free slot


async def test_higher_priority_is_delivered_first(settings: Settings) -> None:
    """One request at a time: what waited on a paused endpoint goes out highest priority first
    (the event's priority, else the endpoint's default), publish order within a priority."""
    one_at_a_time = settings.replace(worker=dataclasses.replace(settings.worker, concurrency=1))
    async with Engine(one_at_a_time) as engine, Receiver() as receiver:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], default_priority=2
        )
        await engine.pause_endpoint(None, endpoint.id)
        for name, priority in [("low", -5), ("default", None), ("urgent", 10), ("high", 5)]:
            await engine.publish(T, "a.b", {"name": name}, priority=priority)
        await engine.publish_batch(T, [EventInput("a.b", {"name": "bulk"}, priority=-10)])
        await wait_status(
            engine, DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id), 5
        )
        await engine.resume_endpoint(None, endpoint.id)
        await wait_status(engine, delivered(endpoint.id), 5)
        order = [r.json()["data"]["name"] for r in receiver.requests]
        assert order == ["urgent", "high", "default", "low", "bulk"]


async def test_fifo_order_is_kept_through_retries(engine: Engine) -> None:
    """The 2nd delivery fails twice: the 3rd (and the rest) wait until it succeeds; another
    endpoint is not held up meanwhile."""

    def script(request: Any, _n: int, k: int) -> Reply:
        return Reply(500 if request.json()["data"]["i"] == 1 and k <= 2 else 200)

    async with Receiver(script) as receiver, Receiver() as bystander:
        endpoint, _ = await engine.create_endpoint(
            T, url=receiver.url, event_types=["*"], retry_policy=FAST, ordering="fifo"
        )
        assert endpoint.ordering == "fifo"
        other, _ = await engine.create_endpoint(T, url=bystander.url, event_types=["*"])
        for i in range(5):
            await engine.publish(T, "a.b", {"i": i})
        await wait_status(engine, delivered(endpoint.id), 5)
        seen = [r.json()["data"]["i"] for r in receiver.requests]
        assert seen == [0, 1, 1, 1, 2, 3, 4]
        await wait_status(engine, delivered(other.id), 5)
        # one at a time: each request started after the one before was answered
        starts = [r.at for r in receiver.requests]
        assert starts == sorted(starts)


async def test_sustained_failure_disables_and_publishes_endpoint_disabled(
    engine: Engine,
) -> None:
    """Failing without a success for `disable_after` (1 s here) disables the endpoint; an
    `endpoint.disabled` event goes to the endpoints subscribed to it, not to the failing one."""
    slow_retries = {"kind": "schedule", "delays": [0] + [0.2] * 30, "jitter": 0}
    async with Receiver(always(500)) as failing, Receiver() as watcher:
        endpoint, _ = await engine.create_endpoint(
            T, url=failing.url, event_types=["*"], retry_policy=slow_retries, disable_after=1.0
        )
        assert endpoint.disable_after == 1.0
        await engine.create_endpoint(T, url=watcher.url, event_types=["endpoint.*"])
        started = time.time()
        await engine.publish(T, "order.filled", {"n": 1})
        await watcher.wait_for(lambda: len(watcher.requests) == 1, timeout=10)
        current = await engine.get_endpoint(None, endpoint.id)
        assert current.status is EndpointStatus.DISABLED
        assert current.status_reason == "no success for 1 s while failing"
        assert current.failing_since is not None and current.last_success_at is None
        assert time.time() - started >= 1.0
        event = watcher.requests[0].json()
        assert event["type"] == "endpoint.disabled"
        assert event["data"]["endpoint_id"] == endpoint.id
        assert event["data"]["url"] == failing.url
        assert event["data"]["reason"] == current.status_reason
        assert event["data"]["disabled_at"].endswith("Z")
        parked = DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id)
        await wait_status(engine, parked, 1)
        await asyncio.sleep(0.3)
        assert all(r.json()["type"] == "order.filled" for r in failing.requests)
        # a success clears the failing state
        failing.script = always(200)
        await engine.resume_endpoint(None, endpoint.id)
        await wait_status(engine, delivered(endpoint.id), 1)
        for _ in range(50):
            current = await engine.get_endpoint(None, endpoint.id)
            if current.last_success_at is not None:
                break
            await asyncio.sleep(0.05)
        assert current.failing_since is None and current.last_success_at is not None


async def test_resume_can_discard_what_was_parked(engine: Engine) -> None:
    async with Receiver() as receiver:
        endpoint, _ = await engine.create_endpoint(T, url=receiver.url, event_types=["*"])
        await engine.pause_endpoint(None, endpoint.id)
        for i in range(3):
            await engine.publish(T, "a.b", {"i": i})
        parked = DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id)
        await wait_status(engine, parked, 3)
        resumed = await engine.resume_endpoint(None, endpoint.id, discard_parked=True)
        assert resumed.status is EndpointStatus.ACTIVE
        left = await engine.list_deliveries(None, DeliveryFilter(endpoint_id=endpoint.id))
        assert left.items == []
        await engine.publish(T, "a.b", {"i": 3})  # what comes next is delivered
        await wait_status(engine, delivered(endpoint.id), 1)
        assert [r.json()["data"]["i"] for r in receiver.requests] == [3]


async def test_the_fallback_receives_what_the_primary_could_not(engine: Engine) -> None:
    async with Receiver(always(500)) as primary, Receiver() as fallback:
        endpoint, secret = await engine.create_endpoint(
            T,
            url=primary.url,
            event_types=["*"],
            retry_policy=FAST,
            max_attempts=2,
            fallback_url=fallback.url,
        )
        assert endpoint.fallback_url == fallback.url
        await engine.publish(T, "order.filled", {"n": 7})
        (item,) = await wait_status(engine, delivered(endpoint.id), 1)
        assert item.fallback
        assert len(primary.requests) == 2  # its attempts were exhausted
        (received,) = fallback.requests
        assert received.json()["data"] == {"n": 7}
        assert received.body == primary.requests[0].body
        assert received.id == primary.requests[0].id == item.id  # the same webhook-id
        assert received.headers["webhook-fallback"] == "true"
        assert "webhook-fallback" not in primary.requests[0].headers
        signing.verify(secret, received.headers, received.body)  # signed with the same secret
        _, attempts = await engine.get_delivery(None, item.id)
        assert [a.status_code for a in attempts] == [500, 500, 200]
        assert [a.request_headers.get("webhook-fallback") for a in attempts] == [
            None,
            None,
            "true",
        ]
        # a replay starts again at the primary
        await engine.retry_delivery(None, item.id)
        await primary.wait_for(lambda: len(primary.requests) == 3)


async def test_parked_deliveries_survive_disable_restart_and_resume(settings: Settings) -> None:
    async with Receiver(always(410)) as receiver:
        async with Engine(settings) as engine:
            endpoint, _ = await engine.create_endpoint(
                T, url=receiver.url, event_types=["*"], retry_policy=FAST
            )
            await engine.publish(T, "a.b", {"n": 0})
            parked = DeliveryFilter(statuses=[DeliveryStatus.PARKED], endpoint_id=endpoint.id)
            await wait_status(engine, parked, 1)
            for n in range(1, 5):
                await engine.publish(T, "a.b", {"n": n})
            await wait_status(engine, parked, 5)
        receiver.script = always(200)
        async with Engine(settings) as engine:  # a restart: a new process on the same database
            current = await engine.get_endpoint(None, endpoint.id)
            assert current.status is EndpointStatus.DISABLED
            await asyncio.sleep(0.3)
            assert len(receiver.requests) == 1  # still parked, nothing sent
            await engine.update_endpoint(None, endpoint.id, status=EndpointStatus.ACTIVE)
            await wait_status(engine, delivered(endpoint.id), 5)
    assert sorted(r.json()["data"]["n"] for r in receiver.requests[1:]) == [0, 1, 2, 3, 4]
