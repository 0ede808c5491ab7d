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
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping

from hookd.config import Settings
from hookd.delivery.sender import USER_AGENT, Outcome, Sender
from hookd.domain import errors, ids
from hookd.domain.models import (
    Attempt,
    AttemptResult,
    ClaimedDelivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
)
from hookd.policy import retry, signing
from hookd.store.port import Store, WakeupSource

log = logging.getLogger("hookd.worker")

#: Longest wait between claims while the database is unavailable (seconds).
_MAX_BACKOFF = 5.0

_STATUS_OF = {
    retry.DecisionKind.DELIVERED: DeliveryStatus.DELIVERED,
    retry.DecisionKind.RETRY: DeliveryStatus.PENDING,
    retry.DecisionKind.FAILED: DeliveryStatus.FAILED,
    retry.DecisionKind.DEAD: DeliveryStatus.DEAD,
    retry.DecisionKind.DISABLE: DeliveryStatus.PARKED,
}

#: Request headers recorded verbatim in attempt logs; custom header values are redacted.
_LOGGED_HEADERS = frozenset(
    {"content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
REDACTED = "[redacted]"


def build_headers(endpoint: Endpoint, delivery_id: str, body: bytes, now: float) -> dict[str, str]:
    """The request headers of one attempt: the endpoint's own, then the Standard Webhooks set."""
    timestamp = int(now)
    keys = [signing.decode_secret(s) for s in endpoint.signing_keys_at(now)]
    headers = dict(endpoint.headers)
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    headers["webhook-id"] = delivery_id
    headers["webhook-timestamp"] = str(timestamp)
    headers["webhook-signature"] = signing.signature_header(keys, delivery_id, timestamp, body)
    return headers


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
    ) -> None:
        """`on_result`, when given, hears of every finished attempt as it is queued for
        recording (on the event loop; it must be quick and must not raise)."""
        self.id = worker_id or f"wrk_{os.getpid()}_{ids.new_id('w')[-8:]}"
        self._store = store
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._on_result = on_result
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._pending_results: list[AttemptResult] = []
        self._results_ready = asyncio.Event()
        self._recorder_closing = False
        self._earliest_retry: float | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._recorder_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

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
        if self._in_flight:
            await asyncio.wait(
                list(self._in_flight.values()), timeout=self._settings.worker.shutdown_grace
            )
        leftover = list(self._in_flight)
        for task in list(self._in_flight.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        assert self._recorder_task is not None
        self._recorder_closing = True  # no more results can come: drain and finish
        self._results_ready.set()
        await self._recorder_task
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

    # claiming ----------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        cfg = self._settings.worker
        backoff = cfg.poll_interval  # grows while the database is unavailable
        while not self._stopping:
            capacity = cfg.concurrency - len(self._in_flight)
            if capacity < min(cfg.batch_size, cfg.concurrency) // 4 or capacity <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
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
        for delivery in claimed:
            endpoint = endpoints.get(delivery.endpoint_id)
            if endpoint is None:
                continue  # the endpoint was deleted, and its deliveries with it
            if endpoint.status is not EndpointStatus.ACTIVE:
                held_back.append(delivery.id)
                continue
            task = asyncio.create_task(self._deliver(delivery, endpoint))
            self._in_flight[delivery.id] = task
            task.add_done_callback(functools.partial(self._finished, delivery.id))
        if held_back:  # paused or disabled since the claim: park them, unsent
            await self._store.release(worker_id=self.id, delivery_ids=held_back, now=self._clock())

    def _finished(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._slot_free.set()

    # sending -----------------------------------------------------------------------------------
    async def _deliver(self, delivery: ClaimedDelivery, endpoint: Endpoint) -> None:
        started = self._clock()
        try:
            headers = build_headers(endpoint, delivery.id, delivery.body, started)
        except Exception as exc:  # e.g. a stored secret that no longer decodes
            log.error("cannot sign delivery %s for %s: %s", delivery.id, endpoint.id, exc)
            outcome = Outcome(
                duration_ms=0.0,
                error_kind=retry.ErrorKind.PROTOCOL,
                error=f"cannot sign the request: {type(exc).__name__}",
            )
            headers = {}
        else:
            outcome = await self._sender.send(
                endpoint.url, headers, delivery.body, timeout=endpoint.timeout
            )
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
        )
        self._pending_results.append(result)
        self._results_ready.set()
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

    # recording ---------------------------------------------------------------------------------
    async def _record_loop(self) -> None:
        cfg = self._settings.worker
        while True:
            await self._results_ready.wait()
            if len(self._pending_results) < cfg.record_batch and not self._recorder_closing:
                await asyncio.sleep(cfg.record_interval)  # let more results share the commit
            self._results_ready.clear()
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
                await self._store.record(worker_id=self.id, results=batch, now=self._clock())
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
