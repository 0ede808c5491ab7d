"""The delivery worker: claim due deliveries in batches, send them concurrently, record in batches.

    claim loop ──► one task per delivery (bounded by `concurrency`) ──► recorder ──► store.record
         ▲                                                                │
         └──────── wake-up: a publish in this process, a retry falling due, or the poll timer
                   (on PostgreSQL also a NOTIFY: a publish, replay or resume in any process)

The policy (hookd.policy.retry) decides what each outcome means; the worker only carries it out.
A worker that dies leaves its leases to expire (or, on SQLite, to be freed at the next start);
the work is then taken again: delivery is at-least-once, and every try carries the same
`webhook-id`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from hookd.config import Settings
from hookd.delivery.sender import USER_AGENT, Outcome, Sender
from hookd.domain import errors, ids
from hookd.domain.models import (
    ENDED_STATUSES,
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointStatus,
)
from hookd.policy import breaker as breakers
from hookd.policy import ratelimit, retry, signing
from hookd.policy.admission import BreakerChange
from hookd.policy.breaker import BreakerState, Transition
from hookd.store.port import Store, ThrottleGrant, ThrottleRequest, WakeupSource

log = logging.getLogger("hookd.worker")

#: Longest wait between claims while the database is unavailable (seconds).
_MAX_BACKOFF = 5.0
#: A delivery held back by its endpoint's concurrency limit waits at least this long (seconds),
#: doubling with each claim batch that finds the endpoint still saturated (none of its requests
#: has finished since), up to `_MAX_BUSY_DELAY`: an endpoint that hangs is not re-claimed in a
#: tight loop before its first timeout tells how slow it is...
_BUSY_DELAY = 0.05
_MAX_BUSY_DELAY = 5.0
#: ... and a held-back delivery (busy endpoint, rate limit) at most this long before another look.
_MAX_DEFER = 30.0
#: Granted deliveries held here for an endpoint's slots should be sent within about this long
#: (seconds), in at most this many rounds of its max_in_flight.
_QUEUE_SECONDS = 2.0
_QUEUE_ROUNDS = 8
#: How much a new response time moves an endpoint's running estimate.
_LATENCY_WEIGHT = 0.2

#: What a delivery held back without asking the shared state gets: nothing, no back-off.
_NO_GRANT = ThrottleGrant(0, 0.0, 0.0)

_STATUS_OF = {
    retry.DecisionKind.DELIVERED: DeliveryStatus.DELIVERED,
    retry.DecisionKind.RETRY: DeliveryStatus.PENDING,
    retry.DecisionKind.FAILED: DeliveryStatus.FAILED,
    retry.DecisionKind.DEAD: DeliveryStatus.DEAD,
    retry.DecisionKind.DISABLE: DeliveryStatus.PARKED,
}

#: Request headers recorded verbatim in attempt logs; custom header values are redacted.
_LOGGED_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "webhook-fallback",
    }
)
REDACTED = "[redacted]"


def build_headers(
    endpoint: Endpoint,
    delivery_id: str,
    body: bytes,
    now: float,
    *,
    keys: Sequence[bytes] | None = None,
) -> dict[str, str]:
    """The request headers of one attempt: the endpoint's own, then the Standard Webhooks set.
    `keys`: the endpoint's signing keys at `now`, already decoded (see `SigningKeys`)."""
    timestamp = int(now)
    if keys is None:
        keys = [signing.decode_secret(s) for s in endpoint.signing_keys_at(now)]
    headers = dict(endpoint.headers)
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    headers["webhook-id"] = delivery_id
    headers["webhook-timestamp"] = str(timestamp)
    headers["webhook-signature"] = signing.signature_header(keys, delivery_id, timestamp, body)
    return headers


class SigningKeys:
    """Endpoints' decoded signing keys, kept until the endpoint changes (the store hands out a
    new `Endpoint` object then) or one of its secrets' grace period ends."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._cache: dict[str, tuple[Endpoint, float, list[bytes]]] = {}

    def at(self, endpoint: Endpoint, now: float) -> list[bytes]:
        cached = self._cache.get(endpoint.id)
        if cached is not None and cached[0] is endpoint and now < cached[1]:
            return cached[2]
        keys = [signing.decode_secret(s) for s in endpoint.signing_keys_at(now)]
        expiries = [
            s.expires_at
            for s in endpoint.secrets
            if s.expires_at is not None and s.expires_at > now
        ]
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[endpoint.id] = (endpoint, min(expiries, default=math.inf), keys)
        return keys


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (v if k.lower() in _LOGGED_HEADERS else REDACTED) for k, v in headers.items()}


class Worker:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        *,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        on_result: Callable[[AttemptResult], None] | None = None,
        on_breaker: Callable[[BreakerChange], None] | None = None,
    ) -> None:
        """`on_result`, when given, hears of every finished attempt as it is queued for
        recording, and `on_breaker` of every circuit-breaker transition this worker causes (on
        the event loop; they must be quick and must not raise)."""
        self.id = worker_id or f"wrk_{os.getpid()}_{ids.new_id('w')[-8:]}"
        self._store = store
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._on_result = on_result
        self._on_breaker = on_breaker
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._pending_results: list[AttemptResult] = []
        self._results_ready = asyncio.Event()
        self._recorder_closing = False
        self._earliest_retry: float | None = None
        # a FIFO endpoint's delivery ended: once recorded, its next one is due (claim at once)
        self._fifo_advanced = False
        self._loop_task: asyncio.Task[None] | None = None
        self._recorder_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # per endpoint: requests in flight from this process, a running response-time estimate
        # (seconds), and back-offs known here (those to share are queued for the recorder)
        self._endpoint_in_flight: collections.Counter[str] = collections.Counter()
        self._latency: dict[str, float] = {}
        self._sending_since: dict[str, dict[str, float]] = {}  # endpoint -> delivery -> start
        self._backoff: dict[str, float] = {}
        self._busy_delay: dict[str, float] = {}  # see _BUSY_DELAY
        self._signing_keys = SigningKeys()
        self._backoffs_to_share: dict[str, float] = {}
        # per endpoint: deliveries granted but waiting here for one of its slots (at most its
        # max_in_flight of them, so a wait is short beside the lease); started as slots free up
        self._waiting: dict[str, collections.deque[tuple[ClaimedDelivery, Endpoint, float]]] = {}
        # granted deliveries claimed ahead (at most a claim batch of them): they wait here for
        # one of the worker's `concurrency` slots, so a slot that frees up is refilled at once,
        # not after the next claim's round trip to the database
        self._ready: collections.deque[tuple[ClaimedDelivery, Endpoint, float]] = (
            collections.deque()
        )
        self._background: set[asyncio.Task[None]] = set()
        self._log_debug = log.isEnabledFor(logging.DEBUG)

    # control -----------------------------------------------------------------------------------
    def notify(self) -> None:
        """Something may be due now (a publish in this process): claim without waiting."""
        self._wake.set()

    async def start(self) -> None:
        recovered = await self._store.recover(now=self._clock())
        if recovered:
            log.info("recovered %d leases left by a previous run", recovered)
        self._recorder_task = asyncio.create_task(self._record_loop(), name="hookd-recorder")
        self._loop_task = asyncio.create_task(self._claim_loop(), name="hookd-claim-loop")
        if isinstance(self._store, WakeupSource):  # e.g. PostgreSQL's NOTIFY from other processes
            self._unsubscribe = self._store.subscribe_wakeups(self.notify)

    async def stop(self) -> None:
        """Stop claiming, let in-flight requests finish up to the grace period, release the rest."""
        if self._loop_task is None:
            return
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._wake.set()
        self._slot_free.set()
        await self._loop_task
        waiting = [d.id for queue in self._waiting.values() for d, _, _ in queue]
        waiting.extend(d.id for d, _, _ in self._ready)
        self._waiting.clear()
        self._ready.clear()
        if self._in_flight:
            await asyncio.wait(
                list(self._in_flight.values()), timeout=self._settings.worker.shutdown_grace
            )
        leftover = list(self._in_flight) + waiting
        for task in list(self._in_flight.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        assert self._recorder_task is not None
        self._recorder_closing = True  # no more results can come: drain and finish
        self._results_ready.set()
        await self._recorder_task
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if leftover:
            released = await self._store.release(
                worker_id=self.id, delivery_ids=leftover, now=self._clock()
            )
            log.info("released %d unfinished deliveries", released)
        self._loop_task = None

    @property
    def alive(self) -> bool:
        """Whether the claim loop and the recorder are both running."""
        return all(
            task is not None and not task.done() for task in (self._loop_task, self._recorder_task)
        )

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def waiting(self) -> int:
        """Deliveries held here for a slot of their endpoint's."""
        return sum(len(queue) for queue in self._waiting.values())

    @property
    def prefetched(self) -> int:
        """Deliveries claimed ahead, held here for one of the worker's slots."""
        return len(self._ready)

    # claiming ----------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        cfg = self._settings.worker
        backoff = cfg.poll_interval  # grows while the database is unavailable
        while not self._stopping:
            # the slots, and one claim batch ahead of them (see _ready)
            capacity = (
                cfg.concurrency + cfg.batch_size - len(self._in_flight) - self.waiting
            ) - len(self._ready)
            if capacity < cfg.batch_size // 4 or capacity <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            self._log_debug = log.isEnabledFor(logging.DEBUG)
            limit = min(cfg.batch_size, capacity)
            try:
                claimed = await self._store.claim(
                    worker_id=self.id,
                    limit=limit,
                    now=self._clock(),
                    lease_seconds=self._settings.lease_seconds,
                )
                if claimed:
                    await self._dispatch(claimed)
            except errors.StoreUnavailable as exc:
                log.warning("claim failed, retrying in %.1f s: %s", backoff, exc)
                await self._idle(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            except Exception:
                log.exception("claim failed; retrying after the poll interval")
                claimed = []
            backoff = cfg.poll_interval
            if len(claimed) == limit:
                continue  # there may be more due right now
            await self._idle(cfg.poll_interval)

    async def _idle(self, poll_interval: float) -> None:
        timeout = poll_interval
        if self._earliest_retry is not None:
            until_retry = self._earliest_retry - self._clock()
            if until_retry <= poll_interval:
                self._earliest_retry = None
                timeout = max(until_retry, 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _dispatch(self, claimed: list[ClaimedDelivery]) -> None:
        endpoints = await self._store.endpoints_by_id({c.endpoint_id for c in claimed})
        held_back: list[str] = []
        sendable: dict[str, list[ClaimedDelivery]] = {}
        for delivery in claimed:
            endpoint = endpoints.get(delivery.endpoint_id)
            if endpoint is None:
                continue  # the endpoint was deleted, and its deliveries with it
            if endpoint.status is not EndpointStatus.ACTIVE:
                held_back.append(delivery.id)
                continue
            sendable.setdefault(endpoint.id, []).append(delivery)
        if held_back:  # paused or disabled since the claim: park them, unsent
            await self._store.release(worker_id=self.id, delivery_ids=held_back, now=self._clock())
        if sendable:
            await self._admit(sendable, endpoints)

    def max_in_flight(self, endpoint: Endpoint) -> int:
        """How many requests this process may have in flight to `endpoint` at once."""
        if endpoint.max_in_flight is not None:
            return endpoint.max_in_flight
        return self._settings.worker.endpoint_max_in_flight

    async def _admit(
        self, claimed: Mapping[str, list[ClaimedDelivery]], endpoints: Mapping[str, Endpoint]
    ) -> None:
        """Send what each endpoint's concurrency limit, rate limit, back-off and circuit breaker
        allow now; give the rest back unsent, due when they may go (no attempt is counted), or,
        when its breaker has stayed open past `fallback_after`, send them to its fallback URL.
        One statement asks every endpoint's shared state (hookd.store.port: `throttle`), one
        gives leases back. Deliveries already bound for the fallback URL take no token and
        ignore the breaker and back-off: those belong to the endpoint's own URL."""
        now = self._clock()
        deferred: dict[str, float] = {}
        primary: dict[str, list[ClaimedDelivery]] = {}
        requests: dict[str, ThrottleRequest] = {}
        for endpoint_id, deliveries in claimed.items():
            endpoint = endpoints[endpoint_id]
            room = self._room(endpoint)
            to_fallback = [d for d in deliveries if d.fallback]
            for delivery in to_fallback[: max(room, 0)]:
                self._start_or_wait(delivery, endpoint, now)
            for position, delivery in enumerate(to_fallback[max(room, 0) :], start=1):
                deferred[delivery.id] = self._defer_until(
                    endpoint, _NO_GRANT, now, position, over_concurrency=True
                )
            room -= len(to_fallback)
            own = primary[endpoint_id] = [d for d in deliveries if not d.fallback]
            if not own:
                continue
            if self._backoff.get(endpoint_id, 0.0) > now:
                room = 0  # known here already: take no tokens
            breaker = endpoint.breaker if endpoint.breaker.enabled else None
            requests[endpoint_id] = ThrottleRequest(
                endpoint_id, max(0, min(len(own), room)), endpoint.rate_limit, breaker
            )
        grants: dict[str, ThrottleGrant] = {}
        if requests:
            try:
                grants = await self._store.throttle(requests=list(requests.values()), now=now)
            except Exception as exc:  # nothing granted: everything waits a poll interval
                log.warning("taking rate-limit tokens failed: %s", exc)
        diverted: list[str] = []
        for endpoint_id, request in requests.items():
            endpoint = endpoints[endpoint_id]
            grant = grants.get(endpoint_id)
            if grant is None:
                grant = ThrottleGrant(0, 0.0, now + self._settings.worker.poll_interval)
            if grant.transition is not None:
                self._breaker_changed(BreakerChange(endpoint_id, grant.transition))
            granted = min(grant.granted, request.wanted)
            own = primary[endpoint_id]
            for delivery in own[:granted]:
                self._start_or_wait(delivery, endpoint, now)
            rest = own[granted:]
            if rest and self._fallback_due(endpoint, grant, now):
                diverted.extend(d.id for d in rest)
                continue
            for position, delivery in enumerate(rest, start=1):
                deferred[delivery.id] = self._defer_until(
                    endpoint,
                    grant,
                    now,
                    position,
                    over_concurrency=granted + position > request.wanted,
                )
            if granted + len(rest) > request.wanted:  # saturated: look later next time
                busy = self._busy_delay.get(endpoint_id, _BUSY_DELAY)
                self._busy_delay[endpoint_id] = min(busy * 2, _MAX_BUSY_DELAY)
        if diverted:
            log.warning(
                "%d deliveries go to fallback URLs: their endpoints' breakers stayed open",
                len(diverted),
            )
            await self._store.divert(worker_id=self.id, delivery_ids=diverted, now=now)
        if deferred:
            await self._store.defer(worker_id=self.id, until=deferred, now=now)
            earliest = min(deferred.values())
            if self._earliest_retry is None or earliest < self._earliest_retry:
                self._earliest_retry = earliest

    def _room(self, endpoint: Endpoint) -> int:
        """How many more deliveries this process may take on for `endpoint` now: free slots,
        plus what may wait here for one (`_queue_depth`)."""
        limit = self.max_in_flight(endpoint)
        return (
            limit
            - self._endpoint_in_flight[endpoint.id]
            + self._queue_depth(endpoint.id, limit)
            - len(self._waiting.get(endpoint.id, ()))
        )

    def _start_or_wait(self, delivery: ClaimedDelivery, endpoint: Endpoint, now: float) -> None:
        if self._endpoint_in_flight[endpoint.id] >= self.max_in_flight(endpoint):
            self._waiting.setdefault(endpoint.id, collections.deque()).append(
                (delivery, endpoint, now)
            )
        elif len(self._in_flight) < self._settings.worker.concurrency:
            self._start(delivery, endpoint)
        else:
            self._ready.append((delivery, endpoint, now))

    def _start_ready(self) -> None:
        """Fill free slots from the deliveries claimed ahead; give back those that waited so
        long (every slot held by slow receivers) that their leases would run short."""
        concurrency = self._settings.worker.concurrency
        ready = self._ready
        if ready and not self._stopping:
            now = self._clock()
            if now - ready[0][2] > self._settings.lease_seconds / 2:
                stale = {d.id: now for d, _, _ in ready}
                ready.clear()
                self._in_background(self._store.defer(worker_id=self.id, until=stale, now=now))
            backoff: dict[str, float] = {}
            while ready and len(self._in_flight) < concurrency:
                delivery, endpoint, claimed_at = ready.popleft()
                until = self._backoff.get(endpoint.id, 0.0)
                if until > now:  # its receiver asked to slow down meanwhile
                    backoff[delivery.id] = until
                else:
                    self._start_or_wait(delivery, endpoint, claimed_at)
            if backoff:
                self._in_background(self._store.defer(worker_id=self.id, until=backoff, now=now))

    def _fallback_due(self, endpoint: Endpoint, grant: ThrottleGrant, now: float) -> bool:
        """Held back by a breaker that has stayed open past the endpoint's `fallback_after`."""
        return (
            endpoint.fallback_url is not None
            and endpoint.fallback_after is not None
            and grant.breaker is not BreakerState.CLOSED
            and grant.tripped_at is not None
            and now - grant.tripped_at >= endpoint.fallback_after
        )

    def _breaker_changed(self, change: BreakerChange) -> None:
        step: Transition = change.transition
        log.warning(
            "endpoint %s: circuit breaker %s -> %s (%s)",
            change.endpoint_id,
            step.from_state.value,
            step.to_state.value,
            step.reason,
            extra={"endpoint_id": change.endpoint_id, "breaker": step.to_state.value},
        )
        if self._on_breaker is not None:
            try:
                self._on_breaker(change)
            except Exception:  # an observer's bug must not stop deliveries
                log.exception("the breaker observer failed")

    def _queue_depth(self, endpoint_id: str, limit: int) -> int:
        """How many granted deliveries may wait here for the endpoint's slots: enough rounds of
        `limit` to be sent within `_QUEUE_SECONDS` at its response time (one round at least, so
        a slow endpoint's wait stays short beside the lease)."""
        latency = self._latency.get(endpoint_id)
        if latency is None:
            return limit
        rounds = int(_QUEUE_SECONDS / max(latency, 0.001))
        return limit * max(1, min(rounds, _QUEUE_ROUNDS))

    def _defer_until(
        self,
        endpoint: Endpoint,
        grant: ThrottleGrant,
        now: float,
        position: int,
        *,
        over_concurrency: bool,
    ) -> float:
        """When the `position`-th delivery held back for `endpoint` should be looked at again."""
        backoff = max(grant.backoff_until, self._backoff.get(endpoint.id, 0.0))
        if grant.breaker is not BreakerState.CLOSED and grant.breaker_until > now:
            # open: until its cool-down ends; half-open: until its probe is given up for lost
            # (a probe that closes it makes them due at once: hookd.store.port, `record`)
            backoff = max(backoff, grant.breaker_until)
        if backoff > now:
            return backoff
        wait = 0.0
        if endpoint.rate_limit is not None:  # when the bucket will hold a token for it
            wait = ratelimit.wait_for(grant.tokens, endpoint.rate_limit.per_second, position)
        if over_concurrency:  # roughly when a slot will be free for it (after those waiting)
            rounds = 1 - (-position // self.max_in_flight(endpoint))
            busy = self._busy_delay.get(endpoint.id, _BUSY_DELAY)
            wait = max(wait, busy, rounds * self._response_time(endpoint.id, now))
        return now + min(max(wait, 0.001), _MAX_DEFER)

    def _response_time(self, endpoint_id: str, now: float) -> float:
        """The endpoint's response time as known here: the running estimate, or longer while
        its oldest request in flight has been out longer (one that never answers is seen as
        slow before its first timeout)."""
        started = self._sending_since.get(endpoint_id)
        oldest = now - min(started.values()) if started else 0.0
        return max(self._latency.get(endpoint_id, 0.0), oldest)

    def _start(self, delivery: ClaimedDelivery, endpoint: Endpoint) -> None:
        task = asyncio.create_task(self._deliver(delivery, endpoint))
        self._in_flight[delivery.id] = task
        self._endpoint_in_flight[endpoint.id] += 1
        self._sending_since.setdefault(endpoint.id, {})[delivery.id] = self._clock()
        task.add_done_callback(functools.partial(self._finished, delivery.id, endpoint.id))

    def _finished(self, delivery_id: str, endpoint_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._busy_delay.pop(endpoint_id, None)  # it answers: a slot is free again
        self._endpoint_in_flight[endpoint_id] -= 1
        if self._endpoint_in_flight[endpoint_id] <= 0:
            del self._endpoint_in_flight[endpoint_id]
        sending = self._sending_since.get(endpoint_id)
        if sending is not None:
            sending.pop(delivery_id, None)
            if not sending:
                del self._sending_since[endpoint_id]
        queue = self._waiting.get(endpoint_id)
        if queue:
            now = self._clock()
            backoff = self._backoff.get(endpoint_id, 0.0)
            # a long wait (the endpoint slowed down since): give them back before leases run out
            stale = now - queue[0][2] > self._settings.lease_seconds / 2
            if backoff > now or stale:  # or the receiver asked to slow down
                until = {d.id: max(backoff, now) for d, _, _ in queue}
                del self._waiting[endpoint_id]
                self._in_background(self._store.defer(worker_id=self.id, until=until, now=now))
            elif not self._stopping:
                delivery, endpoint, _ = queue.popleft()
                if not queue:
                    del self._waiting[endpoint_id]
                self._start(delivery, endpoint)
        self._start_ready()
        self._slot_free.set()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:  # their leases expire instead: they are sent later, not lost
                log.exception("giving back held deliveries failed")

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # sending -----------------------------------------------------------------------------------
    async def _deliver(self, delivery: ClaimedDelivery, endpoint: Endpoint) -> None:
        started = self._clock()
        try:
            keys = self._signing_keys.at(endpoint, started)
            headers = build_headers(endpoint, delivery.id, delivery.body, started, keys=keys)
        except Exception as exc:  # e.g. a stored secret that no longer decodes
            log.error("cannot sign delivery %s for %s: %s", delivery.id, endpoint.id, exc)
            outcome = Outcome(
                duration_ms=0.0,
                error_kind=retry.ErrorKind.PROTOCOL,
                error=f"cannot sign the request: {type(exc).__name__}",
            )
            headers = {}
        else:
            url = endpoint.url
            if delivery.fallback and endpoint.fallback_url is not None:
                url = endpoint.fallback_url  # dead-lettered at url: the fallback's turn
                headers["webhook-fallback"] = "true"
            outcome = await self._sender.send(url, headers, delivery.body, timeout=endpoint.timeout)
        self._complete(delivery, endpoint, headers, outcome, started)

    def _complete(
        self,
        delivery: ClaimedDelivery,
        endpoint: Endpoint,
        headers: Mapping[str, str],
        outcome: Outcome,
        started: float,
    ) -> None:
        now = self._clock()
        attempts_done = delivery.attempts + 1
        decision = retry.decide(
            endpoint.retry_policy,
            status=outcome.status,
            error=outcome.error_kind,
            attempts_done=attempts_done,
            now=now,
            retry_after=outcome.retry_after,
            retry_after_max=self._settings.retry_after_max,
            rand=self._rand,
        )
        status = _STATUS_OF[decision.kind]
        to_fallback = (
            decision.kind is retry.DecisionKind.DEAD
            and endpoint.fallback_url is not None
            and not delivery.fallback
        )
        if to_fallback:  # dead-lettered at url: due again at once, to the fallback URL
            status = DeliveryStatus.PENDING
            decision = retry.Decision(
                retry.DecisionKind.RETRY, now, decision.reason + "; sending to the fallback URL"
            )
        self._observe(endpoint.id, outcome, now)
        attempt = Attempt(
            id=ids.new_id(ids.ATTEMPT, now=started),
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            number=delivery.total_attempts + 1,
            started_at=started,
            duration_ms=round(outcome.duration_ms, 3),
            outcome=retry.classify(outcome.status, outcome.error_kind).value,
            status_code=outcome.status,
            error=outcome.error,
            request_headers=redact_headers(headers),
            response_headers=outcome.response_headers,
            response_body=outcome.body_excerpt,
        )
        result = AttemptResult(
            attempt=attempt,
            status=status,
            next_attempt_at=decision.next_attempt_at,
            disable_endpoint_reason=(
                decision.reason if decision.kind is retry.DecisionKind.DISABLE else None
            ),
            disable_after=(
                self._settings.disable_after
                if endpoint.disable_after is None
                else endpoint.disable_after
            ),
            to_fallback=to_fallback,
            breaker_success=None
            if delivery.fallback
            else breakers.verdict(outcome.status, outcome.error_kind),
            breaker_settings=endpoint.breaker if endpoint.breaker.enabled else None,
        )
        self._pending_results.append(result)
        if len(self._pending_results) == 1:  # the recorder waits for the first one only
            self._results_ready.set()
        if endpoint.ordering is EndpointOrdering.FIFO and status in ENDED_STATUSES:
            self._fifo_advanced = True
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:  # an observer's bug must not stop deliveries
                log.exception("the attempt observer failed")
        if decision.next_attempt_at is not None and (
            self._earliest_retry is None or decision.next_attempt_at < self._earliest_retry
        ):
            self._earliest_retry = decision.next_attempt_at
        if decision.kind is retry.DecisionKind.DELIVERED:
            if self._log_debug:  # checked once per claim, not once per delivery
                log.debug(
                    "delivered %s to %s in %.1f ms", delivery.id, endpoint.id, outcome.duration_ms
                )
        else:
            log.info(
                "delivery %s to %s: %s (%s)",
                delivery.id,
                endpoint.id,
                decision.kind.value,
                decision.reason,
                extra={
                    "delivery_id": delivery.id,
                    "endpoint_id": endpoint.id,
                    "attempt": attempt.number,
                    "status_code": outcome.status,
                    "error": outcome.error_kind,
                },
            )

    def _observe(self, endpoint_id: str, outcome: Outcome, now: float) -> None:
        """Learn from a response: its time, and a receiver's 429/503 asking to slow down."""
        seconds = outcome.duration_ms / 1000.0
        before = self._latency.get(endpoint_id)
        self._latency[endpoint_id] = (
            seconds if before is None else before + _LATENCY_WEIGHT * (seconds - before)
        )
        until = ratelimit.backoff_until(
            outcome.status, outcome.retry_after, now, limit=self._settings.retry_after_max
        )
        if until is not None and until > self._backoff.get(endpoint_id, 0.0):
            self._backoff[endpoint_id] = until
            self._backoffs_to_share[endpoint_id] = until  # the recorder writes it soon
            log.info(
                "endpoint %s asked to slow down (%s): nothing more is sent for %.1f s",
                endpoint_id,
                outcome.status,
                until - now,
                extra={"endpoint_id": endpoint_id, "status_code": outcome.status},
            )

    async def _share_backoffs(self) -> None:
        if not self._backoffs_to_share:
            return
        until, self._backoffs_to_share = self._backoffs_to_share, {}
        try:
            await self._store.back_off(until=until, now=self._clock())
        except Exception:  # this process still honours it; other processes will hear a 429 too
            log.exception("sharing the back-off of %d endpoints failed", len(until))
        now = self._clock()
        self._backoff = {e: t for e, t in self._backoff.items() if t > now}

    # recording ---------------------------------------------------------------------------------
    async def _record_loop(self) -> None:
        cfg = self._settings.worker
        while True:
            await self._results_ready.wait()
            if len(self._pending_results) < cfg.record_batch and not self._recorder_closing:
                await asyncio.sleep(cfg.record_interval)  # let more results share the commit
            self._results_ready.clear()
            await self._share_backoffs()
            while self._pending_results:
                batch = self._pending_results[: cfg.record_batch]
                del self._pending_results[: cfg.record_batch]
                await self._write_results(batch)
            if self._recorder_closing:
                return

    async def _write_results(self, batch: list[AttemptResult]) -> None:
        delay = 0.05
        failures = 0
        # a database that is away (a restart): keep trying while the leases last
        give_up_at = time.monotonic() + self._settings.lease_seconds
        while True:
            try:
                changes = await self._store.record(
                    worker_id=self.id, results=batch, now=self._clock()
                )
                for change in changes:
                    self._breaker_changed(change)
                if self._fifo_advanced:
                    self._fifo_advanced = False
                    self._wake.set()
                return
            except errors.StoreUnavailable as exc:
                if time.monotonic() > give_up_at:
                    break
                log.warning("recording %d attempts failed, retrying: %s", len(batch), exc)
            except Exception:
                failures += 1
                log.exception("recording %d attempts failed (try %d)", len(batch), failures)
                if failures >= 8:
                    break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        log.error(
            "gave up recording %d attempts; their leases will expire and they will be sent again",
            len(batch),
        )
