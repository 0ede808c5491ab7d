"""The storage port's contract, held against every adapter (the fake and the real databases)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookd import crypto
from hookd.domain import ids
from hookd.domain.models import (
    DEFAULT_TENANT,
    Attempt,
    AttemptResult,
    DeliveryStatus,
    Endpoint,
    EndpointSecret,
    EndpointStatus,
    Event,
    Secret,
)
from hookd.policy import retry
from hookd.store.memory import MemoryStore
from hookd.store.port import ApiKey, DeliveryFilter, Store
from hookd.store.sqlite import SqliteStore

OTHER = "tenant-b"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        adapter: Store = MemoryStore()
    else:
        adapter = SqliteStore(tmp_path / "store.db", crypto.SecretBox(crypto.generate_key()))
    await adapter.open()
    yield adapter
    await adapter.close()


def make_endpoint(
    tenant: str = DEFAULT_TENANT,
    patterns: tuple[str, ...] = ("*",),
    status: EndpointStatus = EndpointStatus.ACTIVE,
) -> Endpoint:
    now = time.time()
    return Endpoint(
        id=ids.new_id(ids.ENDPOINT),
        tenant_id=tenant,
        url="https://example.com/hook",
        event_types=patterns,
        secrets=(EndpointSecret(Secret("whsec_" + "A" * 32), now),),
        retry_policy=retry.DEFAULT_POLICY,
        timeout=5.0,
        headers={"Authorization": "Bearer token"},
        status=status,
        created_at=now,
        updated_at=now,
    )


def make_event(
    event_type: str = "order.filled", tenant: str = DEFAULT_TENANT, key: str | None = None
) -> Event:
    now = time.time()
    return Event(
        id=ids.new_id(ids.EVENT),
        tenant_id=tenant,
        type=event_type,
        payload=b'{"n":1}',
        occurred_at=now,
        created_at=now,
        idempotency_key=key,
    )


def result_for(
    delivery_id: str,
    endpoint_id: str,
    status: DeliveryStatus,
    *,
    number: int = 1,
    next_at: float | None = None,
    disable: str | None = None,
) -> AttemptResult:
    attempt = Attempt(
        id=ids.new_id(ids.ATTEMPT),
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        number=number,
        started_at=time.time(),
        duration_ms=1.0,
        outcome="success",
        status_code=200,
    )
    return AttemptResult(attempt, status, next_at, disable)


async def test_endpoint_round_trip_and_tenant_scope(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    assert await store.get_endpoint(None, endpoint.id) == endpoint
    assert await store.get_endpoint(DEFAULT_TENANT, endpoint.id) == endpoint
    assert await store.get_endpoint(OTHER, endpoint.id) is None
    assert not await store.delete_endpoint(OTHER, endpoint.id)
    assert await store.delete_endpoint(DEFAULT_TENANT, endpoint.id)
    assert await store.get_endpoint(None, endpoint.id) is None


async def test_endpoint_pagination_newest_first(store: Store) -> None:
    made = [make_endpoint() for _ in range(5)]
    for e in made:
        await store.create_endpoint(e)
    await store.create_endpoint(make_endpoint(tenant=OTHER))
    first = await store.list_endpoints(DEFAULT_TENANT, limit=2)
    second = await store.list_endpoints(DEFAULT_TENANT, limit=2, cursor=first.next_cursor)
    third = await store.list_endpoints(DEFAULT_TENANT, limit=2, cursor=second.next_cursor)
    seen = [e.id for page in (first, second, third) for e in page.items]
    assert seen == sorted((e.id for e in made), reverse=True)
    assert third.next_cursor is None
    assert len((await store.list_endpoints(None, limit=100)).items) == 6


async def test_publish_fans_out_by_pattern_tenant_and_status(store: Store) -> None:
    orders = make_endpoint(patterns=("order.*",))
    everything = make_endpoint(patterns=("*",))
    paused = make_endpoint(patterns=("order.filled",), status=EndpointStatus.PAUSED)
    foreign = make_endpoint(tenant=OTHER)
    for e in (orders, everything, paused, foreign):
        await store.create_endpoint(e)
    (result,) = await store.publish([make_event("order.filled")])
    assert result.deliveries == 3 and not result.duplicate
    page = await store.list_deliveries(None, DeliveryFilter(event_id=result.event.id), limit=10)
    by_endpoint = {d.endpoint_id: d.status for d in page.items}
    assert by_endpoint == {
        orders.id: DeliveryStatus.PENDING,
        everything.id: DeliveryStatus.PENDING,
        paused.id: DeliveryStatus.PARKED,
    }
    (other,) = await store.publish([make_event("balance.updated")])
    assert other.deliveries == 1


async def test_idempotency_key_returns_the_first_event(store: Store) -> None:
    await store.create_endpoint(make_endpoint())
    first, again, foreign = await store.publish(
        [make_event(key="k1"), make_event(key="k1"), make_event(key="k1", tenant=OTHER)]
    )
    assert again.duplicate and again.event.id == first.event.id and again.deliveries == 1
    assert not foreign.duplicate
    (later,) = await store.publish([make_event(key="k1")])
    assert later.duplicate and later.event.id == first.event.id


async def test_claim_leases_and_lease_expiry(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event() for _ in range(3)])
    now = time.time() + 1
    claimed = await store.claim(worker_id="w1", limit=2, now=now, lease_seconds=30)
    assert len(claimed) == 2
    assert claimed[0].body.startswith(b'{"type":"order.filled","timestamp":"')
    assert claimed[0].body.endswith(b',"data":{"n":1}}')
    rest = await store.claim(worker_id="w2", limit=10, now=now, lease_seconds=30)
    assert len(rest) == 1
    assert await store.claim(worker_id="w2", limit=10, now=now, lease_seconds=30) == []
    # after the lease, another worker may take them; the first worker's late result is ignored
    expired = await store.claim(worker_id="w3", limit=10, now=now + 31, lease_seconds=30)
    assert {c.id for c in expired} == {c.id for c in claimed + rest}
    late = claimed[0]
    await store.record(
        worker_id="w1",
        results=[result_for(late.id, endpoint.id, DeliveryStatus.DELIVERED)],
        now=now + 32,
    )
    delivery = await store.get_delivery(None, late.id)
    assert delivery is not None and delivery.status is DeliveryStatus.SENDING
    assert len(await store.list_attempts(None, late.id)) == 1  # the attempt did happen


async def test_record_applies_results(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event(), make_event()])
    now = time.time() + 1
    a, b = await store.claim(worker_id="w", limit=2, now=now, lease_seconds=30)
    await store.record(
        worker_id="w",
        results=[
            result_for(a.id, endpoint.id, DeliveryStatus.DELIVERED),
            result_for(b.id, endpoint.id, DeliveryStatus.PENDING, next_at=now + 60),
        ],
        now=now,
    )
    da = await store.get_delivery(None, a.id)
    db = await store.get_delivery(None, b.id)
    assert da is not None and da.status is DeliveryStatus.DELIVERED and da.attempts == 1
    assert db is not None and db.status is DeliveryStatus.PENDING
    assert db.next_attempt_at == now + 60 and db.total_attempts == 1
    assert await store.next_due_at() == now + 60
    assert await store.claim(worker_id="w", limit=5, now=now + 59, lease_seconds=30) == []
    (again,) = await store.claim(worker_id="w", limit=5, now=now + 60, lease_seconds=30)
    assert again.attempts == 1 and again.total_attempts == 1


async def test_disable_parks_the_endpoints_deliveries(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event(), make_event()])
    now = time.time() + 1
    first, _ = await store.claim(worker_id="w", limit=2, now=now, lease_seconds=30)
    # only one was claimed by this batch's caller; put the other back to pending
    await store.release(worker_id="w", delivery_ids=[_.id], now=now)
    await store.record(
        worker_id="w",
        results=[
            result_for(
                first.id, endpoint.id, DeliveryStatus.PARKED, disable="receiver answered 410"
            )
        ],
        now=now,
    )
    current = await store.get_endpoint(None, endpoint.id)
    assert current is not None and current.status is EndpointStatus.DISABLED
    assert current.status_reason == "receiver answered 410"
    page = await store.list_deliveries(None, DeliveryFilter(endpoint_id=endpoint.id), limit=10)
    assert {d.status for d in page.items} == {DeliveryStatus.PARKED}
    assert await store.claim(worker_id="w", limit=5, now=now + 1, lease_seconds=30) == []
    # re-enabling resumes them
    await store.update_endpoint(dataclasses.replace(current, status=EndpointStatus.ACTIVE))
    assert len(await store.claim(worker_id="w", limit=5, now=now + 2, lease_seconds=30)) == 2


async def test_retry_result_for_a_paused_endpoint_is_parked(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event()])
    now = time.time() + 1
    (claimed,) = await store.claim(worker_id="w", limit=1, now=now, lease_seconds=30)
    await store.update_endpoint(dataclasses.replace(endpoint, status=EndpointStatus.PAUSED))
    await store.record(
        worker_id="w",
        results=[result_for(claimed.id, endpoint.id, DeliveryStatus.PENDING, next_at=now + 5)],
        now=now,
    )
    delivery = await store.get_delivery(None, claimed.id)
    assert delivery is not None and delivery.status is DeliveryStatus.PARKED


async def test_release_and_recover(store: Store) -> None:
    await store.create_endpoint(make_endpoint())
    await store.publish([make_event(), make_event()])
    now = time.time() + 1
    a, _b = await store.claim(worker_id="w", limit=2, now=now, lease_seconds=300)
    assert await store.release(worker_id="other", delivery_ids=[a.id], now=now) == 0
    assert await store.release(worker_id="w", delivery_ids=[a.id], now=now) == 1
    assert await store.recover(now=now) == 1  # b: its owner is gone (a single-process store)
    assert len(await store.claim(worker_id="w2", limit=5, now=now, lease_seconds=30)) == 2


async def test_requeue_and_purge_dead_letters(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event() for _ in range(3)])
    now = time.time() + 1
    a, b, c = await store.claim(worker_id="w", limit=3, now=now, lease_seconds=30)
    await store.record(
        worker_id="w",
        results=[
            result_for(a.id, endpoint.id, DeliveryStatus.DEAD),
            result_for(b.id, endpoint.id, DeliveryStatus.FAILED),
            result_for(c.id, endpoint.id, DeliveryStatus.DELIVERED),
        ],
        now=now,
    )
    dead_letters = DeliveryFilter(statuses=[DeliveryStatus.FAILED, DeliveryStatus.DEAD])
    page = await store.list_deliveries(DEFAULT_TENANT, dead_letters, limit=10)
    assert {d.id for d in page.items} == {a.id, b.id}
    assert await store.requeue(OTHER, dead_letters, now=now) == 0
    assert await store.requeue(None, dead_letters, delivery_ids=[a.id], now=now) == 1
    requeued = await store.get_delivery(None, a.id)
    assert requeued is not None and requeued.status is DeliveryStatus.PENDING
    assert requeued.attempts == 0 and requeued.total_attempts == 1
    assert await store.purge(OTHER, dead_letters) == 0
    assert (
        await store.purge(
            None, DeliveryFilter(statuses=[DeliveryStatus.FAILED], updated_before=now - 10)
        )
        == 0
    )
    assert await store.purge(None, dead_letters) == 1
    assert await store.get_delivery(None, b.id) is None
    assert await store.list_attempts(None, b.id) == []


async def test_delete_endpoint_removes_its_deliveries(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    (published,) = await store.publish([make_event()])
    await store.delete_endpoint(None, endpoint.id)
    page = await store.list_deliveries(None, DeliveryFilter(event_id=published.event.id), limit=5)
    assert page.items == []
    assert await store.endpoints_by_id([endpoint.id]) == {}


async def test_api_keys(store: Store) -> None:
    key = ApiKey(
        id=ids.new_id(ids.API_KEY),
        prefix="hk_abc",
        key_hash="h" * 64,
        tenant_id=None,
        name="admin",
        created_at=time.time(),
    )
    await store.add_api_key(key)
    assert await store.find_api_key("h" * 64) == key
    assert await store.find_api_key("x" * 64) is None
    assert await store.list_api_keys(None) == [key]
