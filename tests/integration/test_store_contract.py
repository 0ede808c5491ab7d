"""The storage port's contract, held against every adapter (the fake and the real databases)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from hookd import crypto
from hookd.domain import errors, ids
from hookd.domain.models import (
    DEFAULT_TENANT,
    Attempt,
    AttemptResult,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointRateLimit,
    EndpointSecret,
    EndpointStatus,
    Event,
    EventType,
    Secret,
)
from hookd.policy import retry
from hookd.policy.breaker import BreakerSettings, BreakerState
from hookd.store import codec
from hookd.store.memory import MemoryStore
from hookd.store.port import ApiKey, DeliveryFilter, EventFilter, QueueCounts, Store
from hookd.store.postgres import PostgresStore
from hookd.store.sqlite import SqliteStore

OTHER = "tenant-b"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        adapter: Store = MemoryStore()
    elif request.param == "postgres":  # a fresh schema per test (tests/support/postgres.py)
        schema = request.getfixturevalue("postgres_schema")
        adapter = PostgresStore(
            schema.url, crypto.SecretBox(crypto.generate_key()), schema=schema.name
        )
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


#: Quotes, a backslash, non-ASCII and control characters (JSON escapes them in the payload).
ODD_TEXT = 'q"\\é\n\t\u0000\u001f'


async def test_a_claim_carries_each_events_exact_wire_body(store: Store) -> None:
    """Many events of one claim, each with its own type, time and payload (escapes, non-ASCII,
    nesting): every delivery gets exactly the body `codec.wire_body` makes of its own event."""
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    now = time.time()
    events = [
        Event(
            id=ids.new_id(ids.EVENT),
            tenant_id=DEFAULT_TENANT,
            type=("order.filled", "order.paid")[i % 2],
            payload=orjson.dumps(
                {"i": i, "s": 'q"\\é\n\t\u0000\u001f' * i, "nested": {"a": [i, None]}}
            ),
            occurred_at=now - i * 0.001,
            created_at=now,
        )
        for i in range(40)
    ]
    await store.publish(events)
    claimed = await store.claim(worker_id="w", limit=100, now=now + 1, lease_seconds=30)
    by_event = {e.id: e for e in events}
    assert len(claimed) == 40
    for delivery in claimed:
        event = by_event[delivery.event_id]
        assert delivery.body == codec.wire_body(event.type, event.occurred_at, event.payload)
        assert orjson.loads(delivery.body)["data"] == orjson.loads(event.payload)


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
    if isinstance(store, PostgresStore):  # many processes: b's owner may live; its lease expires
        assert await store.recover(now=now) == 0
        assert len(await store.claim(worker_id="w2", limit=5, now=now, lease_seconds=900)) == 1
        later = await store.claim(worker_id="w3", limit=5, now=now + 301, lease_seconds=30)
        assert [c.id for c in later] == [_b.id]
        return
    assert await store.recover(now=now) == 1  # b: its owner is gone (a single-process store)
    assert len(await store.claim(worker_id="w2", limit=5, now=now, lease_seconds=30)) == 2


async def test_an_endpoint_is_stored_only_if_unchanged_since_it_was_read(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    first = dataclasses.replace(endpoint, name="first", updated_at=endpoint.updated_at + 1)
    await store.update_endpoint(first, expected_updated_at=endpoint.updated_at)
    # a second change made from the same (now stale) read is refused, and writes nothing
    stale = dataclasses.replace(
        endpoint, name="stale", status=EndpointStatus.PAUSED, updated_at=endpoint.updated_at + 2
    )
    with pytest.raises(errors.Conflict):
        await store.update_endpoint(stale, expected_updated_at=endpoint.updated_at)
    assert await store.get_endpoint(None, endpoint.id) == first
    # from a fresh read it goes through; without an expectation, as before
    await store.update_endpoint(stale, expected_updated_at=first.updated_at)
    assert await store.get_endpoint(None, endpoint.id) == stale
    await store.update_endpoint(first)
    assert await store.get_endpoint(None, endpoint.id) == first
    with pytest.raises(errors.NotFound):
        await store.update_endpoint(
            dataclasses.replace(first, id="ep_missing"), expected_updated_at=first.updated_at
        )


async def test_a_gone_workers_leases_are_given_back_at_once(store: Store) -> None:
    endpoint = make_endpoint()
    paused = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.create_endpoint(paused)
    await store.publish([make_event() for _ in range(4)])  # 8 deliveries, 4 each
    now = time.time() + 1
    gone = await store.claim(worker_id="gone", limit=5, now=now, lease_seconds=300)
    alive = await store.claim(worker_id="alive", limit=5, now=now, lease_seconds=300)
    assert len(gone) == 5 and len(alive) == 3
    # one of the gone worker's was recorded already: not a lease any more
    done = gone[0]
    await store.record(
        worker_id="gone",
        results=[result_for(done.id, done.endpoint_id, DeliveryStatus.DELIVERED)],
        now=now,
    )
    await store.update_endpoint(dataclasses.replace(paused, status=EndpointStatus.PAUSED))
    assert await store.release_worker(worker_id="gone", now=now + 1) == 4
    assert await store.release_worker(worker_id="gone", now=now + 1) == 0
    for claimed in gone[1:]:
        delivery = await store.get_delivery(None, claimed.id)
        assert delivery is not None and delivery.attempts == 0
        # due at once; parked when its endpoint was paused meanwhile
        expected = (
            DeliveryStatus.PARKED if claimed.endpoint_id == paused.id else DeliveryStatus.PENDING
        )
        assert delivery.status is expected
        if expected is DeliveryStatus.PENDING:
            assert delivery.next_attempt_at == now + 1
    again = await store.claim(worker_id="new", limit=10, now=now + 1, lease_seconds=300)
    assert {c.id for c in again} == {c.id for c in gone[1:] if c.endpoint_id == endpoint.id}
    # the live worker's leases are untouched
    for claimed in alive:
        delivery = await store.get_delivery(None, claimed.id)
        assert delivery is not None and delivery.status is DeliveryStatus.SENDING


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


async def test_a_result_for_a_delivery_deleted_in_flight_is_dropped_alone(store: Store) -> None:
    """A delivery purged (or deleted with its endpoint) while its request was out: its result
    finds nothing to record, and the others of the same batch are recorded all the same."""
    gone_endpoint, kept_endpoint = make_endpoint(), make_endpoint()
    await store.create_endpoint(gone_endpoint)
    await store.create_endpoint(kept_endpoint)
    await store.publish([make_event() for _ in range(2)])
    now = time.time() + 1
    claimed = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=30)
    assert len(claimed) == 4
    await store.delete_endpoint(None, gone_endpoint.id)
    await store.record(
        worker_id="w",
        results=[result_for(c.id, c.endpoint_id, DeliveryStatus.DELIVERED) for c in claimed],
        now=now,
    )
    for delivery in claimed:
        attempts = await store.list_attempts(None, delivery.id)
        stored = await store.get_delivery(None, delivery.id)
        if delivery.endpoint_id == gone_endpoint.id:
            assert stored is None and attempts == []
        else:
            assert stored is not None and stored.status is DeliveryStatus.DELIVERED
            assert len(attempts) == 1


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


# stats and metrics (issue 3) ------------------------------------------------------------------
async def _attempted(
    store: Store, delivery_id: str, endpoint_id: str, status: DeliveryStatus, *, ms: float
) -> None:
    """Claim `delivery_id` and record one attempt of `ms` milliseconds ending in `status`."""
    now = time.time()
    claimed = await store.claim(worker_id="w", limit=100, now=now, lease_seconds=60)
    assert delivery_id in {c.id for c in claimed}
    others = [c.id for c in claimed if c.id != delivery_id]
    await store.release(worker_id="w", delivery_ids=others, now=now)
    result = result_for(delivery_id, endpoint_id, status, next_at=now + 3600)
    attempt = result.attempt._replace(duration_ms=ms, started_at=now)
    await store.record(worker_id="w", results=[result._replace(attempt=attempt)], now=now)


async def test_count_deliveries_groups_by_endpoint_type_and_status(store: Store) -> None:
    a, b, foreign = make_endpoint(), make_endpoint(), make_endpoint(tenant=OTHER)
    for endpoint in (a, b, foreign):
        await store.create_endpoint(endpoint)
    before = time.time() - 1
    await store.publish([make_event("order.filled"), make_event("order.filled")])
    await store.publish([make_event("user.created"), make_event("x.y", tenant=OTHER)])
    first = (await store.list_deliveries(None, DeliveryFilter(endpoint_id=a.id), limit=10)).items
    await _attempted(store, first[0].id, a.id, DeliveryStatus.DELIVERED, ms=5.0)

    counts = await store.count_deliveries(DEFAULT_TENANT, since=before)
    table = {(c.endpoint_id, c.event_type, c.status): c.count for c in counts}
    pending, delivered = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
    first_type = first[0].event_type
    assert table.pop((a.id, first_type, delivered)) == 1
    expected_a = {"order.filled": 2, "user.created": 1}
    expected_a[first_type] -= 1
    for event_type, n in expected_a.items():
        if n:
            assert table.pop((a.id, event_type, pending)) == n
    assert table == {(b.id, "order.filled", pending): 2, (b.id, "user.created", pending): 1}
    assert all(c.count > 0 for c in counts)

    everyone = await store.count_deliveries(None, since=before)
    assert sum(c.count for c in everyone) == 7
    only_b = await store.count_deliveries(DEFAULT_TENANT, since=before, endpoint_id=b.id)
    assert {c.endpoint_id for c in only_b} == {b.id}
    assert await store.count_deliveries(OTHER, since=before, endpoint_id=a.id) == []
    assert await store.count_deliveries(None, since=time.time() + 60) == []


async def test_sample_attempts_counts_all_and_samples_the_latest(store: Store) -> None:
    a, foreign = make_endpoint(), make_endpoint(tenant=OTHER)
    await store.create_endpoint(a)
    await store.create_endpoint(foreign)
    before = time.time() - 1
    await store.publish([make_event() for _ in range(3)] + [make_event(tenant=OTHER)])
    mine = (await store.list_deliveries(DEFAULT_TENANT, DeliveryFilter(), limit=10)).items
    theirs = (await store.list_deliveries(OTHER, DeliveryFilter(), limit=10)).items
    for delivery, ms in zip(sorted(mine, key=lambda d: d.id), (10.0, 20.0, 30.0), strict=True):
        await _attempted(store, delivery.id, a.id, DeliveryStatus.DELIVERED, ms=ms)
    await _attempted(store, theirs[0].id, foreign.id, DeliveryStatus.DEAD, ms=1000.0)

    sample = await store.sample_attempts(DEFAULT_TENANT, since=before, limit=2)
    assert sample.count == 3
    assert sample.total_ms == pytest.approx(60.0)
    assert sorted(sample.durations_ms) == [20.0, 30.0]  # the two latest
    everyone = await store.sample_attempts(None, since=before, limit=100)
    assert everyone.count == 4 and sorted(everyone.durations_ms)[-1] == 1000.0
    of_foreign = await store.sample_attempts(None, since=before, endpoint_id=foreign.id, limit=9)
    assert (of_foreign.count, of_foreign.durations_ms) == (1, [1000.0])
    hidden = await store.sample_attempts(
        DEFAULT_TENANT, since=before, endpoint_id=foreign.id, limit=9
    )
    assert (hidden.count, hidden.total_ms, hidden.durations_ms) == (0, 0.0, [])
    later = await store.sample_attempts(None, since=time.time() + 60, limit=9)
    assert (later.count, later.total_ms, later.durations_ms) == (0, 0.0, [])


async def test_queue_counts(store: Store) -> None:
    active, paused = make_endpoint(), make_endpoint(status=EndpointStatus.PAUSED)
    await store.create_endpoint(active)
    await store.create_endpoint(paused)
    assert await store.queue_counts(now=time.time()) == QueueCounts(0, 0, 0, 0)
    await store.publish([make_event() for _ in range(4)])  # 4 pending, 4 parked
    now = time.time()
    assert await store.queue_counts(now=now) == QueueCounts(due=4, pending=4, sending=0, parked=4)
    claimed = await store.claim(worker_id="w", limit=1, now=now, lease_seconds=60)
    assert await store.queue_counts(now=now) == QueueCounts(due=3, pending=3, sending=1, parked=4)
    # a retry scheduled later is pending but not due
    await store.record(
        worker_id="w",
        results=[result_for(claimed[0].id, active.id, DeliveryStatus.PENDING, next_at=now + 600)],
        now=now,
    )
    assert await store.queue_counts(now=now) == QueueCounts(due=3, pending=4, sending=0, parked=4)
    # an expired lease is due again
    await store.claim(worker_id="w", limit=1, now=now, lease_seconds=60)
    assert (await store.queue_counts(now=now + 120)).due == 3


# tenancy, event types, event lists, idempotency window (issue 3) -----------------------------
def make_key(tenant: str | None, key_hash: str) -> ApiKey:
    return ApiKey(
        id=ids.new_id(ids.API_KEY),
        prefix="hk_" + key_hash[:4],
        key_hash=key_hash,
        tenant_id=tenant,
        name=None,
        created_at=time.time(),
    )


def make_event_type(
    name: str = "order.filled", tenant: str = DEFAULT_TENANT, *, archived: bool = False
) -> EventType:
    now = time.time()
    return EventType(
        id=ids.new_id(ids.EVENT_TYPE),
        tenant_id=tenant,
        name=name,
        description="an order was filled",
        schema={"type": "object", "required": ["id"]},
        example={"id": 1},
        archived=archived,
        created_at=now,
        updated_at=now,
    )


async def test_api_keys_get_list_and_revoke_by_tenant(store: Store) -> None:
    admin, acme, other = (
        make_key(None, "a" * 64),
        make_key("acme", "b" * 64),
        make_key(OTHER, "c" * 64),
    )
    for key in (admin, acme, other):
        await store.add_api_key(key)
    assert await store.list_api_keys("acme") == [acme]
    assert len(await store.list_api_keys(None)) == 3
    assert await store.get_api_key("acme", acme.id) == acme
    assert await store.get_api_key(None, acme.id) == acme
    assert await store.get_api_key("acme", other.id) is None
    assert await store.get_api_key("acme", admin.id) is None  # tenants never see admin keys

    assert await store.revoke_api_key("acme", other.id, now=100.0) is None
    assert (await store.get_api_key(None, other.id)) == other  # untouched
    revoked = await store.revoke_api_key("acme", acme.id, now=100.0)
    assert revoked == dataclasses.replace(acme, revoked_at=100.0)
    assert await store.find_api_key(acme.key_hash) == revoked
    again = await store.revoke_api_key(None, acme.id, now=200.0)
    assert again is not None and again.revoked_at == 100.0  # the first revocation stands
    assert await store.revoke_api_key(None, "key_missing", now=1.0) is None


async def test_event_types_round_trip_and_unique_per_tenant(store: Store) -> None:
    filled = make_event_type()
    await store.create_event_type(filled)
    assert await store.get_event_type(DEFAULT_TENANT, "order.filled") == filled
    assert await store.get_event_type(OTHER, "order.filled") is None
    with pytest.raises(errors.Conflict):
        await store.create_event_type(make_event_type())
    foreign = make_event_type(tenant=OTHER)  # the same name in another tenant is another type
    await store.create_event_type(foreign)

    changed = dataclasses.replace(
        filled, description=None, schema=None, example=None, archived=True, updated_at=5.0
    )
    await store.update_event_type(changed)
    assert await store.get_event_type(DEFAULT_TENANT, "order.filled") == changed
    assert await store.get_event_type(OTHER, "order.filled") == foreign
    with pytest.raises(errors.NotFound):
        await store.update_event_type(make_event_type("never.created"))

    await store.create_event_type(make_event_type("order.canceled"))
    found = await store.event_types_by_name(
        DEFAULT_TENANT, ["order.filled", "nope", "order.canceled"]
    )
    assert sorted(found) == ["order.canceled", "order.filled"]
    assert found["order.filled"].archived  # archived ones are returned too
    assert await store.event_types_by_name(OTHER, ["order.canceled"]) == {}
    assert await store.event_types_by_name(DEFAULT_TENANT, []) == {}


async def test_event_type_list_pages_and_hides_archived(store: Store) -> None:
    made = [make_event_type(f"t.{i}") for i in range(5)]
    for item in made:
        await store.create_event_type(item)
    await store.create_event_type(make_event_type("t.archived", archived=True))
    await store.create_event_type(make_event_type("t.foreign", tenant=OTHER))

    first = await store.list_event_types(DEFAULT_TENANT, include_archived=False, limit=3)
    rest = await store.list_event_types(
        DEFAULT_TENANT, include_archived=False, limit=3, cursor=first.next_cursor
    )
    assert [t.id for t in first.items + rest.items] == sorted((t.id for t in made), reverse=True)
    assert rest.next_cursor is None
    with_archived = await store.list_event_types(DEFAULT_TENANT, include_archived=True, limit=50)
    assert len(with_archived.items) == 6
    everyone = await store.list_event_types(None, include_archived=True, limit=50)
    assert len(everyone.items) == 7


async def test_list_events_filters_and_pages(store: Store) -> None:
    base = time.time()
    events = [
        dataclasses.replace(make_event("order.filled"), created_at=base + i) for i in range(4)
    ]
    events.append(dataclasses.replace(make_event("user.created"), created_at=base + 10))
    events.append(make_event("order.filled", tenant=OTHER))
    await store.publish(events)

    mine = await store.list_events(DEFAULT_TENANT, EventFilter(), limit=50)
    assert [e.id for e in mine.items] == sorted((e.id for e in events[:5]), reverse=True)
    assert mine.items[0].payload == b'{"n":1}'
    assert len((await store.list_events(None, EventFilter(), limit=50)).items) == 6
    filled = await store.list_events(DEFAULT_TENANT, EventFilter(type="order.filled"), limit=50)
    assert len(filled.items) == 4
    window = EventFilter(created_after=base + 1, created_before=base + 3)  # [1, 3)
    assert {e.id for e in (await store.list_events(None, window, limit=50)).items} == {
        events[1].id,
        events[2].id,
    }
    first = await store.list_events(DEFAULT_TENANT, EventFilter(), limit=2)
    second = await store.list_events(
        DEFAULT_TENANT, EventFilter(), limit=2, cursor=first.next_cursor
    )
    third = await store.list_events(
        DEFAULT_TENANT, EventFilter(), limit=2, cursor=second.next_cursor
    )
    assert [len(p.items) for p in (first, second, third)] == [2, 2, 1]
    assert third.next_cursor is None


async def test_idempotency_keys_expire_after_the_window(store: Store) -> None:
    await store.create_endpoint(make_endpoint())
    old = dataclasses.replace(make_event(key="k"), created_at=time.time() - 100)
    (first,) = await store.publish([old])
    # inside the window: the first event
    (again,) = await store.publish([make_event(key="k")], idempotent_since=time.time() - 200)
    assert again.duplicate and again.event.id == first.event.id and again.deliveries == 1
    # outside it: a new event with the same key, which is the one later repeats match
    (fresh,) = await store.publish([make_event(key="k")], idempotent_since=time.time() - 50)
    assert not fresh.duplicate and fresh.event.id != first.event.id
    (repeat,) = await store.publish([make_event(key="k")], idempotent_since=time.time() - 50)
    assert repeat.duplicate and repeat.event.id == fresh.event.id
    # no window: any earlier event with the key, the newest first
    (forever,) = await store.publish([make_event(key="k")])
    assert forever.duplicate and forever.event.id == fresh.event.id


async def test_a_key_repeated_within_one_batch_is_one_event(store: Store) -> None:
    first, second, other = await store.publish(
        [make_event(key="b"), make_event(key="b"), make_event(key="c")], idempotent_since=0.0
    )
    assert not first.duplicate and second.duplicate and second.event.id == first.event.id
    assert not other.duplicate
    assert len((await store.list_events(None, EventFilter(), limit=10)).items) == 2


async def test_endpoint_filter_and_rate_limit_round_trip(store: Store) -> None:
    endpoint = dataclasses.replace(
        make_endpoint(),
        filter={"amount": {"gt": 10}, "currencies": ["BTC", "ETH"]},
        rate_limit=EndpointRateLimit(per_second=2.5, burst=10),
    )
    await store.create_endpoint(endpoint)
    assert await store.get_endpoint(None, endpoint.id) == endpoint
    cleared = dataclasses.replace(endpoint, filter=None, rate_limit=None, updated_at=time.time())
    await store.update_endpoint(cleared)
    assert await store.get_endpoint(None, endpoint.id) == cleared
    assert (await store.endpoints_by_id([endpoint.id]))[endpoint.id] == cleared


async def test_event_type_answers_follow_writes(store: Store) -> None:
    """Publishing asks for event types on every event; whatever an adapter caches, a declaration
    or a change made through the store is seen by the very next lookup."""
    assert await store.event_types_by_name(DEFAULT_TENANT, {"pay.done"}) == {}
    declared = make_event_type("pay.done")
    await store.create_event_type(declared)
    assert await store.event_types_by_name(DEFAULT_TENANT, {"pay.done"}) == {"pay.done": declared}
    archived = dataclasses.replace(declared, archived=True, updated_at=declared.updated_at + 1)
    await store.update_event_type(archived)
    found = await store.event_types_by_name(DEFAULT_TENANT, {"pay.done", "other.x"})
    assert found == {"pay.done": archived}
    assert await store.event_types_by_name(OTHER, {"pay.done"}) == {}


# priority (issue 5) ------------------------------------------------------------------------------
async def test_a_deliverys_priority_is_its_events_or_its_endpoints_default(store: Store) -> None:
    urgent = dataclasses.replace(make_endpoint(), default_priority=7)
    plain = make_endpoint()
    await store.create_endpoint(urgent)
    await store.create_endpoint(plain)
    assert (await store.get_endpoint(None, urgent.id)) == urgent
    given = dataclasses.replace(make_event(), priority=-3)
    await store.publish([make_event(), given])
    assert (await store.get_event(None, given.id)) == given
    deliveries = (await store.list_deliveries(None, DeliveryFilter(), limit=10)).items
    found = {(d.endpoint_id, d.event_id != given.id): d.priority for d in deliveries}
    assert found == {(urgent.id, True): 7, (plain.id, True): 0, (urgent.id, False): -3,
                     (plain.id, False): -3}  # fmt: skip


async def test_claim_takes_higher_priority_first_among_due_ones(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    low = dataclasses.replace(make_event(), priority=-5)
    normal = make_event()
    high = dataclasses.replace(make_event(), priority=9)
    later_high = dataclasses.replace(make_event(), priority=10)
    await store.publish([low, normal, high, later_high])
    now = time.time() + 1
    # the top one becomes a retry that is not due yet: it must not be claimed, nor hold others
    (top,) = await store.claim(worker_id="w", limit=1, now=now, lease_seconds=30)
    assert top.event_id == later_high.id
    await store.record(
        worker_id="w",
        results=[result_for(top.id, endpoint.id, DeliveryStatus.PENDING, next_at=now + 60)],
        now=now,
    )
    claimed = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=300)
    assert [c.event_id for c in claimed] == [high.id, normal.id, low.id]
    assert [c.priority for c in claimed] == [9, 0, -5]
    (retry_due,) = await store.claim(worker_id="w", limit=10, now=now + 60, lease_seconds=30)
    assert retry_due.event_id == later_high.id


# per-endpoint isolation (issue 5): shared token buckets, back-off, deferral ------------------
async def test_defer_gives_leases_back_uncounted_due_at_their_own_times(store: Store) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event(), make_event()])
    now = time.time() + 1
    a, b = await store.claim(worker_id="w", limit=2, now=now, lease_seconds=300)
    await store.defer(worker_id="other", until={a.id: now + 5}, now=now)  # not its lease
    await store.defer(worker_id="w", until={a.id: now + 5, b.id: now + 10}, now=now)
    for claimed, due in ((a, now + 5), (b, now + 10)):
        delivery = await store.get_delivery(None, claimed.id)
        assert delivery is not None
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.next_attempt_at == pytest.approx(due)
        assert delivery.attempts == 0 and delivery.total_attempts == 0
    assert await store.claim(worker_id="w", limit=5, now=now + 4, lease_seconds=30) == []
    again = await store.claim(worker_id="w", limit=5, now=now + 6, lease_seconds=30)
    assert [c.id for c in again] == [a.id]
    assert again[0].attempts == 0


async def test_throttle_shares_one_token_bucket_per_endpoint(store: Store) -> None:
    from hookd.store.port import ThrottleRequest

    limited = EndpointRateLimit(per_second=10.0, burst=5)
    now = 1_000_000.0
    first = await store.throttle(
        requests=[ThrottleRequest("ep_a", 3, limited), ThrottleRequest("ep_b", 7, None)], now=now
    )
    assert first["ep_a"].granted == 3 and first["ep_a"].tokens == pytest.approx(2.0)
    assert first["ep_b"].granted == 7 and first["ep_b"].backoff_until == 0.0
    # another worker, the same instant: only what is left
    second = await store.throttle(requests=[ThrottleRequest("ep_a", 4, limited)], now=now)
    assert second["ep_a"].granted == 2 and second["ep_a"].tokens == pytest.approx(0.0)
    # 0.25 s later: 2.5 tokens back, two whole ones granted; the half waits
    later = await store.throttle(requests=[ThrottleRequest("ep_a", 9, limited)], now=now + 0.25)
    assert later["ep_a"].granted == 2 and later["ep_a"].tokens == pytest.approx(0.5)
    # never more than the burst, however long it rested
    rested = await store.throttle(requests=[ThrottleRequest("ep_a", 99, limited)], now=now + 60)
    assert rested["ep_a"].granted == 5


async def test_back_off_stops_grants_until_it_ends_and_never_shortens(store: Store) -> None:
    from hookd.store.port import ThrottleRequest

    limited = EndpointRateLimit(per_second=1.0, burst=2)
    now = 2_000_000.0
    await store.back_off(until={"ep_a": now + 10, "ep_b": now + 3}, now=now)
    await store.back_off(until={"ep_a": now + 5}, now=now)  # shorter: ignored
    during = await store.throttle(
        requests=[
            ThrottleRequest("ep_a", 1, None),
            ThrottleRequest("ep_b", 1, limited),
            ThrottleRequest("ep_c", 1, None),
        ],
        now=now + 4,
    )
    assert during["ep_a"].granted == 0 and during["ep_a"].backoff_until == pytest.approx(now + 10)
    assert during["ep_b"].granted == 1  # its back-off is over
    assert during["ep_c"].granted == 1  # others are unaffected
    after = await store.throttle(requests=[ThrottleRequest("ep_a", 3, None)], now=now + 10.5)
    assert after["ep_a"].granted == 3


# FIFO per endpoint (issue 5) ----------------------------------------------------------------------
def fifo_endpoint(**changes: object) -> Endpoint:
    return dataclasses.replace(make_endpoint(), ordering=EndpointOrdering.FIFO, **changes)  # type: ignore[arg-type]


async def statuses(store: Store, endpoint_id: str) -> list[DeliveryStatus]:
    """The endpoint's deliveries' statuses in publish order."""
    page = await store.list_deliveries(None, DeliveryFilter(endpoint_id=endpoint_id), limit=100)
    return [d.status for d in sorted(page.items, key=lambda d: (d.created_at, d.id))]


async def test_a_fifo_endpoint_has_one_delivery_out_at_a_time(store: Store) -> None:
    fifo = fifo_endpoint()
    other = make_endpoint()
    await store.create_endpoint(fifo)
    await store.create_endpoint(other)
    assert (await store.get_endpoint(None, fifo.id)) == fifo
    first, second, third = make_event(), make_event(), make_event()
    await store.publish([first])
    await store.publish([second, third])
    P, Q, S = DeliveryStatus.PENDING, DeliveryStatus.QUEUED, DeliveryStatus.SENDING
    assert await statuses(store, fifo.id) == [P, Q, Q]
    assert await statuses(store, other.id) == [P, P, P]  # others are not held
    now = time.time() + 1
    claimed = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=30)
    heads = [c for c in claimed if c.endpoint_id == fifo.id]
    assert [c.event_id for c in heads] == [first.id]
    done = [result_for(c.id, other.id, DeliveryStatus.DELIVERED) for c in claimed if c not in heads]
    await store.record(worker_id="w", results=done, now=now)
    # a retry keeps the head: the next one still waits, even when the retry is not due yet
    await store.record(
        worker_id="w",
        results=[result_for(heads[0].id, fifo.id, DeliveryStatus.PENDING, next_at=now + 60)],
        now=now,
    )
    assert await statuses(store, fifo.id) == [P, Q, Q]
    assert await store.claim(worker_id="w", limit=10, now=now + 1, lease_seconds=30) == []
    (again,) = await store.claim(worker_id="w", limit=10, now=now + 60, lease_seconds=30)
    assert again.id == heads[0].id
    # delivered: the next one becomes the head, due now
    await store.record(
        worker_id="w",
        results=[result_for(again.id, fifo.id, DeliveryStatus.DELIVERED, number=2)],
        now=now + 61,
    )
    assert await statuses(store, fifo.id) == [DeliveryStatus.DELIVERED, P, Q]
    (nxt,) = await store.claim(worker_id="w", limit=10, now=now + 61, lease_seconds=30)
    assert nxt.event_id == second.id
    assert await statuses(store, fifo.id) == [DeliveryStatus.DELIVERED, S, Q]
    # a dead (or failed) head ends too: the one after it goes
    await store.record(
        worker_id="w", results=[result_for(nxt.id, fifo.id, DeliveryStatus.DEAD)], now=now + 62
    )
    (last,) = await store.claim(worker_id="w", limit=10, now=now + 62, lease_seconds=30)
    assert last.event_id == third.id


async def test_a_fifo_endpoint_gets_a_batch_in_its_order(store: Store) -> None:
    """A batch's events share their creation time (Engine.publish_batch): the FIFO order among
    them must still be the batch's."""
    fifo = fifo_endpoint()
    await store.create_endpoint(fifo)
    now = time.time()
    batch = [
        dataclasses.replace(make_event(), id=event_id, created_at=now, occurred_at=now)
        for event_id in ids.new_ids(ids.EVENT, 30, now=now)
    ]
    await store.publish(batch)
    sent: list[str] = []
    at = now + 1
    for _ in batch:
        (head,) = await store.claim(worker_id="w", limit=10, now=at, lease_seconds=30)
        sent.append(head.event_id)
        done = result_for(head.id, fifo.id, DeliveryStatus.DELIVERED)
        await store.record(worker_id="w", results=[done], now=at)
        at += 0.001
    assert sent == [e.id for e in batch]


async def test_a_paused_fifo_endpoint_keeps_its_order(store: Store) -> None:
    fifo = fifo_endpoint(status=EndpointStatus.PAUSED)
    await store.create_endpoint(fifo)
    await store.publish([make_event(), make_event(), make_event()])
    parked, queued = DeliveryStatus.PARKED, DeliveryStatus.QUEUED
    assert await statuses(store, fifo.id) == [parked, queued, queued]
    now = time.time() + 1
    resumed = dataclasses.replace(fifo, status=EndpointStatus.ACTIVE, updated_at=now)
    await store.update_endpoint(resumed)
    assert await statuses(store, fifo.id) == [DeliveryStatus.PENDING, queued, queued]
    # no longer FIFO: what waited is due at once
    unordered = dataclasses.replace(resumed, ordering=EndpointOrdering.NONE, updated_at=now)
    await store.update_endpoint(unordered)
    assert await statuses(store, fifo.id) == [DeliveryStatus.PENDING] * 3
    assert len(await store.claim(worker_id="w", limit=10, now=now, lease_seconds=30)) == 3


# endpoint health (issue 5) -------------------------------------------------------------------
async def test_sustained_failure_disables_and_publishes_endpoint_disabled(store: Store) -> None:
    failing = make_endpoint()
    watcher = make_endpoint(patterns=("endpoint.*",))
    await store.create_endpoint(failing)
    await store.create_endpoint(watcher)
    await store.publish([make_event(), make_event()])
    now = time.time() + 1
    a, b = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=300)

    def failure(delivery_id: str, at: float) -> AttemptResult:
        attempt = result_for(delivery_id, failing.id, DeliveryStatus.PENDING).attempt._replace(
            outcome="retry",
            status_code=500,
        )
        return AttemptResult(attempt, DeliveryStatus.PENDING, at + 1, disable_after=10.0)

    await store.record(worker_id="w", results=[failure(a.id, now)], now=now)
    found = await store.get_endpoint(None, failing.id)
    assert found is not None and found.failing_since == now and found.last_success_at is None
    assert found.status is EndpointStatus.ACTIVE
    # still failing 10 s later: disabled, its deliveries parked, the event published to others
    await store.record(worker_id="w", results=[failure(b.id, now + 10)], now=now + 10)
    found = await store.get_endpoint(None, failing.id)
    assert found is not None and found.status is EndpointStatus.DISABLED
    assert found.status_reason == "no success for 10 s while failing"
    (event,) = (await store.list_events(None, EventFilter(type="endpoint.disabled"), limit=5)).items
    assert orjson.loads(event.payload)["endpoint_id"] == failing.id
    made = (await store.list_deliveries(None, DeliveryFilter(event_id=event.id), limit=5)).items
    assert [d.endpoint_id for d in made] == [watcher.id]
    # a success (here, a late one) clears the failing state
    await store.record(
        worker_id="w",
        results=[result_for(a.id, failing.id, DeliveryStatus.DELIVERED)],
        now=now + 11,
    )
    found = await store.get_endpoint(None, failing.id)
    assert found is not None and found.failing_since is None
    assert found.last_success_at == now + 11


# fallback destination (issue 5) --------------------------------------------------------------
async def test_a_dead_delivery_moves_on_to_the_fallback(store: Store) -> None:
    endpoint = dataclasses.replace(make_endpoint(), fallback_url="https://backup.example.com/h")
    await store.create_endpoint(endpoint)
    assert await store.get_endpoint(None, endpoint.id) == endpoint
    await store.publish([make_event()])
    now = time.time() + 1
    (first,) = await store.claim(worker_id="w", limit=5, now=now, lease_seconds=30)
    assert not first.fallback
    moved = result_for(first.id, endpoint.id, DeliveryStatus.PENDING, next_at=now)._replace(
        to_fallback=True
    )
    await store.record(worker_id="w", results=[moved], now=now)
    found = await store.get_delivery(None, first.id)
    assert found is not None and found.fallback and found.status is DeliveryStatus.PENDING
    assert found.attempts == 0 and found.total_attempts == 1  # a fresh budget at the fallback
    (again,) = await store.claim(worker_id="w", limit=5, now=now, lease_seconds=30)
    assert again.fallback and again.id == first.id
    await store.record(
        worker_id="w", results=[result_for(again.id, endpoint.id, DeliveryStatus.DEAD)], now=now
    )
    # a replay starts again at the primary
    assert await store.requeue(None, DeliveryFilter(), delivery_ids=[first.id], now=now) == 1
    found = await store.get_delivery(None, first.id)
    assert found is not None and not found.fallback and found.attempts == 0


# circuit breaker (issue 5) ----------------------------------------------------------------------
BREAKER = BreakerSettings(window=60, buckets=6, min_requests=3, failure_rate=0.5, cooldown=10)


def breaker_result(
    delivery_id: str, endpoint_id: str, success: bool, *, next_at: float
) -> AttemptResult:
    result = result_for(
        delivery_id,
        endpoint_id,
        DeliveryStatus.DELIVERED if success else DeliveryStatus.PENDING,
        next_at=None if success else next_at,
    )
    return result._replace(breaker_success=success, breaker_settings=BREAKER)


async def test_the_breaker_is_shared_state_opened_by_records_and_probed_once(
    store: Store,
) -> None:
    from hookd.store.port import ThrottleRequest

    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event() for _ in range(5)])
    now = time.time()
    claimed = await store.claim(worker_id="w", limit=5, now=now, lease_seconds=60)
    failed = [breaker_result(c.id, endpoint.id, False, next_at=now + 1) for c in claimed[:3]]
    changes = await store.record(worker_id="w", results=failed, now=now)
    assert [(c.endpoint_id, c.transition.to_state) for c in changes] == [
        (endpoint.id, BreakerState.OPEN)
    ]
    assert changes[0].transition.reason == "3 of 3 attempts failed in 60 s"
    gates = await store.endpoint_gates([endpoint.id, "ep_unknown"])
    assert list(gates) == [endpoint.id]
    assert gates[endpoint.id].breaker.state is BreakerState.OPEN
    assert list(await store.tripped_breakers(limit=10)) == [endpoint.id]

    ask = [ThrottleRequest(endpoint.id, 2, None, BREAKER)]
    during = (await store.throttle(requests=ask, now=now + 5))[endpoint.id]
    assert (during.granted, during.breaker, during.breaker_until) == (
        0,
        BreakerState.OPEN,
        pytest.approx(now + 10),
    )
    probe = (await store.throttle(requests=ask, now=now + 10))[endpoint.id]
    assert (probe.granted, probe.probe, probe.breaker) == (1, True, BreakerState.HALF_OPEN)
    # another worker process at the same moment: no second probe
    other = (await store.throttle(requests=ask, now=now + 10.5))[endpoint.id]
    assert (other.granted, other.breaker) == (0, BreakerState.HALF_OPEN)

    # the probe succeeds: closed, and what waited (due by the probe's end) is due now
    await store.defer(
        worker_id="w", until={claimed[3].id: now + 19, claimed[4].id: now + 500}, now=now + 10.5
    )
    closing = [breaker_result(claimed[0].id, endpoint.id, True, next_at=0)]
    changes = await store.record(worker_id="w", results=closing, now=now + 11)
    assert [c.transition.to_state for c in changes] == [BreakerState.CLOSED]
    assert await store.tripped_breakers(limit=10) == {}
    due = await store.get_delivery(None, claimed[3].id)
    later = await store.get_delivery(None, claimed[4].id)
    assert due is not None and due.next_attempt_at == pytest.approx(now + 11)
    assert later is not None and later.next_attempt_at == pytest.approx(now + 500)
    after = (await store.throttle(requests=ask, now=now + 11))[endpoint.id]
    assert (after.granted, after.breaker) == (2, BreakerState.CLOSED)
    history = (await store.endpoint_gates([endpoint.id]))[endpoint.id].breaker.history
    assert [t.to_state for t in history] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def test_divert_sends_held_deliveries_to_the_fallback(store: Store) -> None:
    endpoint = dataclasses.replace(make_endpoint(), fallback_url="https://backup.example.com/h")
    await store.create_endpoint(endpoint)
    await store.publish([make_event(), make_event()])
    now = time.time()
    claimed = await store.claim(worker_id="w", limit=5, now=now, lease_seconds=60)
    assert await store.divert(worker_id="other", delivery_ids=[claimed[0].id], now=now) == 0
    assert await store.divert(worker_id="w", delivery_ids=[claimed[0].id], now=now) == 1
    found = await store.get_delivery(None, claimed[0].id)
    assert found is not None and found.fallback and found.status is DeliveryStatus.PENDING
    assert found.attempts == 0
    again = await store.claim(worker_id="w", limit=5, now=now + 1, lease_seconds=60)
    assert [c.id for c in again] == [claimed[0].id] and again[0].fallback


async def test_breaker_settings_round_trip_on_the_endpoint(store: Store) -> None:
    endpoint = dataclasses.replace(make_endpoint(), breaker=BREAKER, fallback_after=120.0)
    await store.create_endpoint(endpoint)
    found = await store.get_endpoint(None, endpoint.id)
    assert found is not None and found.breaker == BREAKER and found.fallback_after == 120.0
    plain = make_endpoint()
    await store.create_endpoint(plain)
    found = await store.get_endpoint(None, plain.id)
    assert found is not None and found.breaker == BreakerSettings()
