"""`GET /metrics`: Prometheus metrics, in the text exposition format.

Each app has its own `CollectorRegistry` (never the process-wide one), read by a collector that
turns the engine's plain counters (hookd.metrics) into metric families at scrape time:

    hookd_events_published_total                 events published (idempotent repeats excluded)
    hookd_delivery_attempts_total{endpoint,outcome}
                                                 attempts by what they led to: delivered, retry,
                                                 failed, dead, parked; endpoints past
                                                 HOOKD_METRICS_ENDPOINT_CAP share endpoint="other"
    hookd_attempt_duration_seconds               histogram of attempt latency
    hookd_queue_depth{state}                     deliveries due (claimable now), pending, sending,
                                                 parked, over every tenant; read from the store at
                                                 most once a second
    hookd_in_flight                              requests this process's worker has in flight
    hookd_breaker_transitions_total{to}          circuit-breaker transitions this process's worker
                                                 caused, by the state they led to: open,
                                                 half_open, closed
    hookd_endpoint_breaker_open{endpoint_id}     1 open, 0.5 half-open, for endpoints whose breaker
                                                 is not closed (at most HOOKD_METRICS_ENDPOINT_CAP
                                                 of them, by id); read with the queue counts
    hookd_breakers_tripped                       how many breakers are not closed (counted up to
                                                 HOOKD_METRICS_ENDPOINT_CAP)
    hookd_worker_processes, hookd_worker_process_attempts_total{process}
                                                 with HOOKD_WORKER_PROCESSES > 1
    hookd_api_processes, hookd_api_process_events_published_total{process}
                                                 with HOOKD_API_PROCESSES > 1
    hookd_build_info{version}                    1

Counters are this process's since it started, with what its worker and API processes reported;
with API processes, a scrape of any of them shows the owner's merged counts
(hookd.api.processes). They name endpoints of every tenant, so they need
an admin key unless `HOOKD_METRICS_PUBLIC=true` opens them (a private network's scraper).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

import hookd
from hookd.api import auth, problems
from hookd.api.deps import EngineDep
from hookd.api.jsonbody import StrictJSONRoute
from hookd.domain import errors
from hookd.engine import Engine
from hookd.policy.breaker import BreakerState
from hookd.store.port import Gate, QueueCounts

log = logging.getLogger("hookd.api")

#: What `hookd_endpoint_breaker_open` shows for each breaker state that is not closed.
BREAKER_GAUGE = {BreakerState.OPEN: 1.0, BreakerState.HALF_OPEN: 0.5}

#: Seconds a queue count is reused before the store is asked again.
QUEUE_CACHE_SECONDS = 1.0

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


class Exposition:
    """The app's registry, and the cached queue counts and tripped breakers its collector
    shows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.queue: QueueCounts | None = None
        self.tripped: dict[str, Gate] | None = None
        self._queue_at = -QUEUE_CACHE_SECONDS
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Ask the store for queue counts, unless the last answer is less than a second old."""
        async with self._lock:
            if time.monotonic() - self._queue_at < QUEUE_CACHE_SECONDS:
                return
            try:
                self.queue = await self.engine.store.queue_counts(now=time.time())
            except errors.StoreError as exc:
                log.warning("metrics: cannot count the queue: %s", exc)
                self.queue = None  # not shown rather than stale
            try:
                cap = self.engine.settings.metrics_endpoint_cap
                self.tripped = await self.engine.store.tripped_breakers(limit=cap)
            except errors.StoreError as exc:
                log.warning("metrics: cannot read the circuit breakers: %s", exc)
                self.tripped = None
            self._queue_at = time.monotonic()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition

    def collect(self) -> Iterator[Metric]:
        engine = self._exposition.engine
        counters = engine.counters
        yield CounterMetricFamily(
            "hookd_events_published",
            "Events published (idempotent repeats excluded).",
            value=counters.published,
        )
        attempts = CounterMetricFamily(
            "hookd_delivery_attempts",
            "Delivery attempts by what they led to (delivered, retry, failed, dead, parked).",
            labels=["endpoint", "outcome"],
        )
        for endpoint, outcome, count in counters.by_endpoint():
            attempts.add_metric([endpoint, outcome], count)
        yield attempts
        buckets, total = counters.latency()
        yield HistogramMetricFamily(
            "hookd_attempt_duration_seconds",
            "Delivery attempt latency, from sending the request to reading the response.",
            buckets=[(_bound(b), float(n)) for b, n in buckets],
            sum_value=total,
        )
        queue = self._exposition.queue
        if queue is not None:
            depth = GaugeMetricFamily(
                "hookd_queue_depth",
                "Deliveries waiting, every tenant: due (claimable now), pending, sending, parked.",
                labels=["state"],
            )
            for state in ("due", "pending", "sending", "parked"):
                depth.add_metric([state], getattr(queue, state))
            yield depth
        transitions = CounterMetricFamily(
            "hookd_breaker_transitions",
            "Circuit-breaker transitions this process's worker caused, by the state they led to.",
            labels=["to"],
        )
        for state, count in counters.breaker_transitions.items():
            transitions.add_metric([state], count)
        yield transitions
        tripped = self._exposition.tripped
        if tripped is not None:
            gauge = GaugeMetricFamily(
                "hookd_endpoint_breaker_open",
                "Endpoints whose circuit breaker is not closed: 1 open, 0.5 half-open.",
                labels=["endpoint_id"],
            )
            for endpoint_id, gate in sorted(tripped.items()):
                gauge.add_metric([endpoint_id], BREAKER_GAUGE.get(gate.breaker.state, 0.0))
            yield gauge
            yield GaugeMetricFamily(
                "hookd_breakers_tripped",
                "Endpoints whose circuit breaker is open or half-open (counted up to "
                "HOOKD_METRICS_ENDPOINT_CAP).",
                value=len(tripped),
            )
        yield GaugeMetricFamily(
            "hookd_in_flight",
            "Requests this process's worker has in flight.",
            value=0 if engine.worker is None else engine.worker.in_flight,
        )
        processes = engine.processes
        if processes is not None:
            yield GaugeMetricFamily(
                "hookd_worker_processes",
                "Delivery worker processes running, this one included (HOOKD_WORKER_PROCESSES).",
                value=processes.running + 1,
            )
            by_process = CounterMetricFamily(
                "hookd_worker_process_attempts",
                "Delivery attempts by worker process (0: this one; the others report every "
                "second, and their counts are in every other metric too).",
                labels=["process"],
            )
            helpers = processes.attempts()
            own = sum(counters.totals().values()) - sum(helpers.values())
            by_process.add_metric(["0"], max(own, 0))
            for index, count in sorted(helpers.items()):
                by_process.add_metric([str(index)], count)
            yield by_process
        yield from _api_processes(engine)
        info = GaugeMetricFamily("hookd_build_info", "hookd's version.", labels=["version"])
        info.add_metric([hookd.__version__], 1)
        yield info


def _api_processes(engine: Engine) -> Iterator[Metric]:
    from hookd.api.processes import ApiProcesses  # here: it imports this package's engine

    peers = engine.api_peers
    if not isinstance(peers, ApiProcesses):
        return
    yield GaugeMetricFamily(
        "hookd_api_processes",
        "API processes serving, this one included (HOOKD_API_PROCESSES).",
        value=peers.running + 1,
    )
    by_process = CounterMetricFamily(
        "hookd_api_process_events_published",
        "Events published by API process (0: this one; the others report every second and "
        "when scraped, and their counts are in hookd_events_published_total too).",
        labels=["process"],
    )
    helpers = peers.published()
    own = engine.counters.published - sum(helpers.values())
    by_process.add_metric(["0"], max(own, 0))
    for index, count in sorted(helpers.items()):
        by_process.add_metric([str(index)], count)
    yield by_process


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def install(app: FastAPI, engine: Engine) -> None:
    app.state.metrics = Exposition(engine)
    app.include_router(router)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Metrics in the Prometheus text format (version 0.0.4).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problems.responses(401),
        403: {
            "description": "Metrics are not public (HOOKD_METRICS_PUBLIC=false) and the key is "
            "not an admin key.",
            "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
    # public by default: the key is optional (an empty requirement means "none needed")
    openapi_extra={"security": [{}]},
)
async def metrics(
    request: Request,
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(auth.bearer)],
) -> Response:
    if not engine.settings.metrics_public:
        key = await auth.authenticate(engine, credentials)
        if key.tenant_id is not None:
            raise errors.Forbidden("metrics cover every tenant: an admin key is required")
    local = renderer(request.app)
    text = await local() if engine.api_peers is None else await engine.api_peers.metrics(local)
    return Response(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def renderer(app: FastAPI) -> Callable[[], Awaitable[bytes]]:
    """This process's exposition, rendered (with queue counts at most a second old)."""
    exposition: Exposition = app.state.metrics

    async def render() -> bytes:
        await exposition.refresh()
        return exposition.render()

    return render
