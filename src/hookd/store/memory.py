"""`MemoryStore`: the storage port in plain Python structures, for unit tests and experiments.

It keeps the same contract as the SQL adapters (tests/integration/test_store_contract.py runs
against every adapter), so a query the fake has not been taught fails the tests at once.
Nothing is persisted; secrets are kept as given (there is no "rest" to encrypt them at).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

from hookd.domain import errors, ids
from hookd.domain.models import (
    ENDED_STATUSES,
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointStatus,
    Event,
    EventType,
    PublishResult,
    first_status,
)
from hookd.policy import admission
from hookd.policy.breaker import BreakerState
from hookd.policy.patterns import PatternSet
from hookd.store import codec
from hookd.store.port import (
    ENDPOINT_CHANGED,
    ApiKey,
    AttemptSample,
    BreakerChange,
    DeliveryCount,
    DeliveryFilter,
    EventFilter,
    Gate,
    Page,
    QueueCounts,
    ThrottleGrant,
    ThrottleRequest,
)

T = TypeVar("T", bound=object)

_CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class MemoryStore:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.events: dict[str, Event] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.leases: dict[str, str] = {}  # delivery id -> worker id
        self.attempts: dict[str, list[Attempt]] = {}
        self.event_types: dict[tuple[str, str], EventType] = {}  # (tenant, name) -> type
        self.open_count = 0
        # endpoint id -> its shared sending state (token bucket, back-off, breaker)
        self.gates: dict[str, Gate] = {}

    async def open(self) -> None:
        self.open_count += 1

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # API keys ----------------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey) -> None:
        if any(k.key_hash == key.key_hash for k in self.keys.values()):
            raise errors.StoreError("duplicate API key hash")
        self.keys[key.id] = key

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.keys.values() if k.key_hash == key_hash), None)

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKey]:
        keys = [k for k in self.keys.values() if tenant_id is None or k.tenant_id == tenant_id]
        return sorted(keys, key=lambda k: k.id)

    async def get_api_key(self, tenant_id: str | None, key_id: str) -> ApiKey | None:
        key = self.keys.get(key_id)
        if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
            return None
        return key

    async def revoke_api_key(
        self, tenant_id: str | None, key_id: str, *, now: float
    ) -> ApiKey | None:
        key = await self.get_api_key(tenant_id, key_id)
        if key is not None and key.revoked_at is None:
            key = self.keys[key_id] = dataclasses.replace(key, revoked_at=now)
        return key

    # event types -------------------------------------------------------------------------------
    async def create_event_type(self, event_type: EventType) -> None:
        slot = (event_type.tenant_id, event_type.name)
        if slot in self.event_types:
            raise errors.Conflict(f"event type {event_type.name!r} already exists")
        self.event_types[slot] = event_type

    async def update_event_type(self, event_type: EventType) -> None:
        slot = (event_type.tenant_id, event_type.name)
        before = self.event_types.get(slot)
        if before is None:
            raise errors.NotFound("event type", event_type.name)
        self.event_types[slot] = dataclasses.replace(
            event_type, id=before.id, created_at=before.created_at
        )

    async def get_event_type(self, tenant_id: str, name: str) -> EventType | None:
        return self.event_types.get((tenant_id, name))

    async def event_types_by_name(
        self, tenant_id: str, names: Collection[str]
    ) -> dict[str, EventType]:
        found = (self.event_types.get((tenant_id, name)) for name in names)
        return {t.name: t for t in found if t is not None}

    async def list_event_types(
        self,
        tenant_id: str | None,
        *,
        include_archived: bool,
        limit: int,
        cursor: str | None = None,
    ) -> Page[EventType]:
        items = [
            t
            for t in self.event_types.values()
            if self._visible(tenant_id, t.tenant_id) and (include_archived or not t.archived)
        ]
        return _page(items, limit, cursor)

    # endpoints ---------------------------------------------------------------------------------
    async def create_endpoint(self, endpoint: Endpoint) -> None:
        if endpoint.id in self.endpoints:
            raise errors.StoreError(f"duplicate endpoint id {endpoint.id}")
        self.endpoints[endpoint.id] = endpoint

    async def update_endpoint(
        self, endpoint: Endpoint, *, expected_updated_at: float | None = None
    ) -> None:
        before = self.endpoints.get(endpoint.id)
        if before is None or before.tenant_id != endpoint.tenant_id:
            raise errors.NotFound("endpoint", endpoint.id)
        if expected_updated_at is not None and before.updated_at != expected_updated_at:
            raise errors.Conflict(ENDPOINT_CHANGED)
        self.endpoints[endpoint.id] = endpoint
        self._status_changed(endpoint.id, before.status, endpoint.status, endpoint.updated_at)
        if endpoint.ordering is EndpointOrdering.FIFO:
            self._promote_fifo_heads([endpoint.id], endpoint.updated_at)
        else:  # nothing waits in a queue
            target = (
                DeliveryStatus.PENDING
                if endpoint.status is EndpointStatus.ACTIVE
                else DeliveryStatus.PARKED
            )
            now = endpoint.updated_at
            self._move(endpoint.id, DeliveryStatus.QUEUED, target, now, now)

    def _promote_fifo_heads(self, endpoint_ids: Collection[str], now: float) -> None:
        """A FIFO endpoint with no head (pending, sending or parked): its oldest queued delivery
        becomes the head, due now."""
        heads = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.PARKED)
        for endpoint_id in endpoint_ids:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None or endpoint.ordering is not EndpointOrdering.FIFO:
                continue
            mine = [d for d in self.deliveries.values() if d.endpoint_id == endpoint_id]
            queued = [d for d in mine if d.status is DeliveryStatus.QUEUED]
            if not queued or any(d.status in heads for d in mine):
                continue
            head = min(queued, key=lambda d: (d.created_at, d.id))
            active = endpoint.status is EndpointStatus.ACTIVE
            self.deliveries[head.id] = dataclasses.replace(
                head,
                status=DeliveryStatus.PENDING if active else DeliveryStatus.PARKED,
                next_attempt_at=now,
                updated_at=now,
            )

    def _status_changed(
        self, endpoint_id: str, before: EndpointStatus, after: EndpointStatus, now: float
    ) -> None:
        active = EndpointStatus.ACTIVE
        if before is active and after is not active:
            self._move(endpoint_id, DeliveryStatus.PENDING, DeliveryStatus.PARKED, now, None)
        elif before is not active and after is active:
            self._move(endpoint_id, DeliveryStatus.PARKED, DeliveryStatus.PENDING, now, now)

    def _move(
        self,
        endpoint_id: str,
        source: DeliveryStatus,
        target: DeliveryStatus,
        now: float,
        due: float | None,
    ) -> None:
        for d in list(self.deliveries.values()):
            if d.endpoint_id == endpoint_id and d.status is source:
                changes: dict[str, object] = {"status": target, "updated_at": now}
                if due is not None:
                    changes["next_attempt_at"] = due
                self.deliveries[d.id] = dataclasses.replace(d, **changes)  # type: ignore[arg-type]

    def _visible(self, tenant_id: str | None, owner: str) -> bool:
        return tenant_id is None or tenant_id == owner

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint | None:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or not self._visible(tenant_id, endpoint.tenant_id):
            return None
        return endpoint

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int, cursor: str | None = None
    ) -> Page[Endpoint]:
        items = [e for e in self.endpoints.values() if self._visible(tenant_id, e.tenant_id)]
        return _page(items, limit, cursor)

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> bool:
        if await self.get_endpoint(tenant_id, endpoint_id) is None:
            return False
        del self.endpoints[endpoint_id]
        for d in [d for d in self.deliveries.values() if d.endpoint_id == endpoint_id]:
            self._drop_delivery(d.id)
        return True

    def _drop_delivery(self, delivery_id: str) -> None:
        self.deliveries.pop(delivery_id, None)
        self.attempts.pop(delivery_id, None)
        self.leases.pop(delivery_id, None)

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        return {i: self.endpoints[i] for i in endpoint_ids if i in self.endpoints}

    # events ------------------------------------------------------------------------------------
    async def publish(
        self, events: Sequence[Event], *, idempotent_since: float | None = None
    ) -> list[PublishResult]:
        return self._publish_now(events, idempotent_since)

    def _publish_now(
        self,
        events: Sequence[Event],
        idempotent_since: float | None,
        *,
        exclude: str | None = None,
    ) -> list[PublishResult]:
        results = []
        fifo: set[str] = set()  # FIFO endpoints that got deliveries (queued)
        made: list[Delivery] = []  # ids drawn at the end, in this order (ids.new_ids_at)
        for event in events:
            if event.idempotency_key is not None:
                first = max(
                    (
                        e
                        for e in self.events.values()
                        if e.tenant_id == event.tenant_id
                        and e.idempotency_key == event.idempotency_key
                        and (idempotent_since is None or e.created_at >= idempotent_since)
                    ),
                    key=lambda e: e.created_at,
                    default=None,
                )
                if first is not None:
                    count = sum(
                        1 for d in (*self.deliveries.values(), *made) if d.event_id == first.id
                    )
                    results.append(PublishResult(first, count, True))
                    continue
            self.events[event.id] = event
            count = 0
            for endpoint in self.endpoints.values():
                if endpoint.tenant_id != event.tenant_id or endpoint.id == exclude:
                    continue
                if not PatternSet(endpoint.event_types).matches(event.type):
                    continue
                active = endpoint.status is EndpointStatus.ACTIVE
                in_order = endpoint.ordering is EndpointOrdering.FIFO
                if in_order:
                    fifo.add(endpoint.id)
                delivery = Delivery(
                    id="",
                    tenant_id=event.tenant_id,
                    event_id=event.id,
                    endpoint_id=endpoint.id,
                    event_type=event.type,
                    status=first_status(in_order, active),
                    priority=(
                        endpoint.default_priority if event.priority is None else event.priority
                    ),
                    attempts=0,
                    total_attempts=0,
                    next_attempt_at=event.created_at,
                    created_at=event.created_at,
                    updated_at=event.created_at,
                )
                made.append(delivery)
                count += 1
            results.append(PublishResult(event, count))
        made_ids = ids.new_ids_at(ids.DELIVERY, [d.created_at for d in made])
        for delivery, delivery_id in zip(made, made_ids, strict=True):
            self.deliveries[delivery_id] = dataclasses.replace(delivery, id=delivery_id)
        self._promote_fifo_heads(fifo, max((e.created_at for e in events), default=0.0))
        return results

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event | None:
        event = self.events.get(event_id)
        if event is None or not self._visible(tenant_id, event.tenant_id):
            return None
        return event

    async def list_events(
        self,
        tenant_id: str | None,
        filter: EventFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Event]:
        f = filter
        items = [
            e
            for e in self.events.values()
            if self._visible(tenant_id, e.tenant_id)
            and (f.type is None or e.type == f.type)
            and (f.created_after is None or e.created_at >= f.created_after)
            and (f.created_before is None or e.created_at < f.created_before)
        ]
        return _page(items, limit, cursor)

    # the worker's side -------------------------------------------------------------------------
    async def claim(
        self, *, worker_id: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        due = sorted(
            (
                d
                for d in self.deliveries.values()
                if d.status in _CLAIMABLE
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
            ),
            key=lambda d: (-d.priority, d.next_attempt_at, d.id),
        )[:limit]
        claimed = []
        for d in due:
            self.deliveries[d.id] = dataclasses.replace(
                d,
                status=DeliveryStatus.SENDING,
                next_attempt_at=now + lease_seconds,
                updated_at=now,
            )
            self.leases[d.id] = worker_id
            event = self.events[d.event_id]
            claimed.append(
                ClaimedDelivery(
                    id=d.id,
                    endpoint_id=d.endpoint_id,
                    event_id=d.event_id,
                    event_type=d.event_type,
                    attempts=d.attempts,
                    total_attempts=d.total_attempts,
                    body=codec.wire_body(event.type, event.occurred_at, event.payload),
                    priority=d.priority,
                    fallback=d.fallback,
                )
            )
        return claimed

    async def record(
        self, *, worker_id: str, results: Sequence[AttemptResult], now: float
    ) -> list[BreakerChange]:
        for result in results:
            attempt = result.attempt
            delivery = self.deliveries.get(attempt.delivery_id)
            if delivery is None:
                continue
            self.attempts.setdefault(delivery.id, []).append(attempt)
            if (
                self.leases.get(delivery.id) != worker_id
                or delivery.status is not DeliveryStatus.SENDING
            ):
                continue
            status = result.status
            endpoint = self.endpoints.get(delivery.endpoint_id)
            if status is DeliveryStatus.PENDING and (
                endpoint is None or endpoint.status is not EndpointStatus.ACTIVE
            ):
                status = DeliveryStatus.PARKED
            self.leases.pop(delivery.id, None)
            self.deliveries[delivery.id] = dataclasses.replace(
                delivery,
                status=status,
                next_attempt_at=result.next_attempt_at,
                attempts=0 if result.to_fallback else delivery.attempts + 1,
                fallback=delivery.fallback or result.to_fallback,
                total_attempts=delivery.total_attempts + 1,
                last_status_code=attempt.status_code,
                last_error=attempt.error,
                updated_at=now,
            )
        disables = {
            r.attempt.endpoint_id: r.disable_endpoint_reason
            for r in results
            if r.disable_endpoint_reason is not None
        }
        succeeded = {r.attempt.endpoint_id for r in results if r.attempt.outcome == "success"}
        for result in results:
            endpoint = self.endpoints.get(result.attempt.endpoint_id)
            if endpoint is None:
                continue
            if endpoint.id in succeeded:
                endpoint = dataclasses.replace(endpoint, last_success_at=now, failing_since=None)
            elif endpoint.failing_since is None:
                endpoint = dataclasses.replace(endpoint, failing_since=now)
            self.endpoints[endpoint.id] = endpoint
            after = result.disable_after
            if (
                endpoint.id not in succeeded
                and endpoint.id not in disables
                and after is not None
                and endpoint.failing_since is not None
                and endpoint.failing_since <= now - after
            ):
                disables[endpoint.id] = codec.failing_reason(after)
        for endpoint_id, reason in disables.items():
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None or endpoint.status is EndpointStatus.DISABLED:
                continue
            self.endpoints[endpoint.id] = dataclasses.replace(
                endpoint, status=EndpointStatus.DISABLED, status_reason=reason, updated_at=now
            )
            self._status_changed(endpoint.id, endpoint.status, EndpointStatus.DISABLED, now)
            event = codec.disabled_event(endpoint.tenant_id, endpoint.id, endpoint.url, reason, now)
            self._publish_now([event], None, exclude=endpoint.id)
        ended = {r.attempt.endpoint_id for r in results if r.status in ENDED_STATUSES}
        self._promote_fifo_heads(ended, now)
        changes: list[BreakerChange] = []
        for endpoint_id, outcomes in admission.breaker_outcomes(results).items():
            before = self.gates.get(endpoint_id, Gate())
            gate, changed = admission.settle(before, outcomes, now)
            self.gates[endpoint_id] = gate
            changes.extend(changed)
            if admission.probe_closed(changed):  # what waited for the probe is due now
                for delivery in list(self.deliveries.values()):
                    due = delivery.next_attempt_at
                    if (
                        delivery.endpoint_id == endpoint_id
                        and delivery.status is DeliveryStatus.PENDING
                        and due is not None
                        and now < due <= before.breaker.until
                    ):
                        self.deliveries[delivery.id] = dataclasses.replace(
                            delivery, next_attempt_at=now, updated_at=now
                        )
        return changes

    async def release(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        released = 0
        for delivery_id in delivery_ids:
            delivery = self._leased(delivery_id, worker_id)
            if delivery is None:
                continue
            self._unlease(delivery, now)
            released += 1
        return released

    async def release_worker(self, *, worker_id: str, now: float) -> int:
        held = [d for d, owner in self.leases.items() if owner == worker_id]
        return await self.release(worker_id=worker_id, delivery_ids=held, now=now)

    def _unlease(self, delivery: Delivery, now: float) -> None:
        endpoint = self.endpoints.get(delivery.endpoint_id)
        active = endpoint is not None and endpoint.status is EndpointStatus.ACTIVE
        self.leases.pop(delivery.id, None)
        self.deliveries[delivery.id] = dataclasses.replace(
            delivery,
            status=DeliveryStatus.PENDING if active else DeliveryStatus.PARKED,
            next_attempt_at=now,
            updated_at=now,
        )

    def _leased(self, delivery_id: str, worker_id: str) -> Delivery | None:
        """The delivery if `worker_id` holds its lease."""
        delivery = self.deliveries.get(delivery_id)
        if (
            delivery is None
            or delivery.status is not DeliveryStatus.SENDING
            or self.leases.get(delivery_id) != worker_id
        ):
            return None
        return delivery

    async def defer(self, *, worker_id: str, until: Mapping[str, float], now: float) -> None:
        for delivery_id, due in until.items():
            delivery = self._leased(delivery_id, worker_id)
            if delivery is None:
                continue
            self._unlease(delivery, now)
            self.deliveries[delivery_id] = dataclasses.replace(
                self.deliveries[delivery_id], next_attempt_at=due
            )

    async def throttle(
        self, *, requests: Sequence[ThrottleRequest], now: float
    ) -> dict[str, ThrottleGrant]:
        grants: dict[str, ThrottleGrant] = {}
        for request in requests:
            gate = self.gates.get(request.endpoint_id, Gate(updated_at=now))
            self.gates[request.endpoint_id], grants[request.endpoint_id] = admission.admit(
                gate, request, now
            )
        return grants

    async def back_off(self, *, until: Mapping[str, float], now: float) -> None:
        for endpoint_id, when in until.items():
            gate = self.gates.get(endpoint_id, Gate(updated_at=now))
            self.gates[endpoint_id] = admission.back_off(gate, when)

    async def divert(self, *, worker_id: str, delivery_ids: Sequence[str], now: float) -> int:
        diverted = 0
        for delivery_id in delivery_ids:
            delivery = self._leased(delivery_id, worker_id)
            if delivery is None:
                continue
            self._unlease(delivery, now)
            self.deliveries[delivery_id] = dataclasses.replace(
                self.deliveries[delivery_id], fallback=True, attempts=0
            )
            diverted += 1
        return diverted

    async def endpoint_gates(self, endpoint_ids: Collection[str]) -> dict[str, Gate]:
        return {e: self.gates[e] for e in endpoint_ids if e in self.gates}

    async def tripped_breakers(self, *, limit: int) -> dict[str, Gate]:
        tripped = sorted(
            (e, g) for e, g in self.gates.items() if g.breaker.state is not BreakerState.CLOSED
        )
        return dict(tripped[:limit])

    async def recover(self, *, now: float) -> int:
        sending = [d for d in self.deliveries.values() if d.status is DeliveryStatus.SENDING]
        for delivery in sending:
            self.leases.pop(delivery.id, None)
            self.deliveries[delivery.id] = dataclasses.replace(
                delivery, status=DeliveryStatus.PENDING, next_attempt_at=now, updated_at=now
            )
        return len(sending)

    async def next_due_at(self) -> float | None:
        times = [
            d.next_attempt_at
            for d in self.deliveries.values()
            if d.status in _CLAIMABLE and d.next_attempt_at is not None
        ]
        return min(times, default=None)

    # deliveries, attempts, dead letters --------------------------------------------------------
    def _matching(
        self, tenant_id: str | None, f: DeliveryFilter, delivery_ids: Sequence[str] | None = None
    ) -> list[Delivery]:
        wanted = None if delivery_ids is None else set(delivery_ids)
        statuses = {DeliveryStatus(s) for s in f.statuses}
        return [
            d
            for d in self.deliveries.values()
            if self._visible(tenant_id, d.tenant_id)
            and (wanted is None or d.id in wanted)
            and (not statuses or d.status in statuses)
            and (f.endpoint_id is None or d.endpoint_id == f.endpoint_id)
            and (f.event_id is None or d.event_id == f.event_id)
            and (f.event_type is None or d.event_type == f.event_type)
            and (f.created_after is None or d.created_at >= f.created_after)
            and (f.created_before is None or d.created_at < f.created_before)
            and (f.updated_before is None or d.updated_at < f.updated_before)
        ]

    async def list_deliveries(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        return _page(self._matching(tenant_id, filter), limit, cursor)

    async def get_delivery(self, tenant_id: str | None, delivery_id: str) -> Delivery | None:
        delivery = self.deliveries.get(delivery_id)
        if delivery is None or not self._visible(tenant_id, delivery.tenant_id):
            return None
        return delivery

    async def list_attempts(self, tenant_id: str | None, delivery_id: str) -> list[Attempt]:
        if await self.get_delivery(tenant_id, delivery_id) is None:
            return []
        return sorted(self.attempts.get(delivery_id, []), key=lambda a: a.number)

    async def requeue(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        delivery_ids: Sequence[str] | None = None,
        now: float,
        limit: int | None = None,
    ) -> int:
        chosen = sorted(
            (
                d
                for d in self._matching(tenant_id, filter, delivery_ids)
                if d.status is not DeliveryStatus.SENDING
            ),
            key=lambda d: d.id,
        )
        if limit is not None:
            chosen = chosen[:limit]
        for delivery in chosen:
            self._unlease(dataclasses.replace(delivery, attempts=0, fallback=False), now)
        return len(chosen)

    async def purge(self, tenant_id: str | None, filter: DeliveryFilter) -> int:
        chosen = [
            d for d in self._matching(tenant_id, filter) if d.status is not DeliveryStatus.SENDING
        ]
        for delivery in chosen:
            self._drop_delivery(delivery.id)
        return len(chosen)

    # stats and metrics -------------------------------------------------------------------------
    async def count_deliveries(
        self, tenant_id: str | None, *, since: float, endpoint_id: str | None = None
    ) -> list[DeliveryCount]:
        groups: collections.Counter[tuple[str, str, DeliveryStatus]] = collections.Counter(
            (d.endpoint_id, d.event_type, d.status)
            for d in self.deliveries.values()
            if self._visible(tenant_id, d.tenant_id)
            and d.created_at >= since
            and (endpoint_id is None or d.endpoint_id == endpoint_id)
        )
        return [DeliveryCount(e, t, s, n) for (e, t, s), n in groups.items()]

    async def sample_attempts(
        self,
        tenant_id: str | None,
        *,
        since: float,
        endpoint_id: str | None = None,
        limit: int,
    ) -> AttemptSample:
        found = [
            a
            for delivery_id, attempts in self.attempts.items()
            if (d := self.deliveries.get(delivery_id)) is not None
            and self._visible(tenant_id, d.tenant_id)
            for a in attempts
            if a.started_at >= since and (endpoint_id is None or a.endpoint_id == endpoint_id)
        ]
        found.sort(key=lambda a: a.started_at, reverse=True)
        return AttemptSample(
            count=len(found),
            total_ms=sum(a.duration_ms for a in found),
            durations_ms=[a.duration_ms for a in found[:limit]],
        )

    async def queue_counts(self, *, now: float) -> QueueCounts:
        by_status = collections.Counter(d.status for d in self.deliveries.values())
        due = sum(
            1
            for d in self.deliveries.values()
            if d.status in _CLAIMABLE and d.next_attempt_at is not None and d.next_attempt_at <= now
        )
        return QueueCounts(
            due=due,
            pending=by_status[DeliveryStatus.PENDING],
            sending=by_status[DeliveryStatus.SENDING],
            parked=by_status[DeliveryStatus.PARKED],
        )


def _page(items: Sequence[T], limit: int, cursor: str | None) -> Page[T]:
    ordered = sorted(items, key=lambda item: getattr(item, "id", ""), reverse=True)
    if cursor is not None:
        ordered = [item for item in ordered if getattr(item, "id", "") < cursor]
    if len(ordered) > limit:
        page = ordered[:limit]
        return Page(page, getattr(page[-1], "id", None))
    return Page(ordered, None)
