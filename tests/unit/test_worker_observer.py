"""The worker's observer hook (what feeds /metrics), on the in-memory store: it hears of every
attempt, and a failing observer does not stop deliveries."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_worker import FAST, ScriptedSender, fails, ok, run_until

from hookd import crypto
from hookd.config import Settings, WorkerSettings
from hookd.delivery.worker import Worker
from hookd.domain.models import DEFAULT_TENANT, AttemptResult, DeliveryStatus, Secret
from hookd.engine import Engine
from hookd.policy.retry import ErrorKind
from hookd.store.memory import MemoryStore


def settings(tmp_path: Path) -> Settings:
    return Settings(
        db_path=tmp_path / "unused.db",
        secret_key=Secret(crypto.generate_key()),
        worker=WorkerSettings(poll_interval=0.01),
    )


async def test_the_engine_counts_every_attempt_and_publish(tmp_path: Path) -> None:
    sender = ScriptedSender(
        {"https://a.example/": [fails(ErrorKind.TIMEOUT), ok()], "https://b.example/": [ok(400)]}
    )
    engine = Engine(settings(tmp_path), store=MemoryStore(), sender=sender)
    async with engine:
        a, _ = await engine.create_endpoint(
            DEFAULT_TENANT, url="https://a.example/", event_types=["*"], retry_policy=FAST
        )
        b, _ = await engine.create_endpoint(
            DEFAULT_TENANT, url="https://b.example/", event_types=["*"]
        )
        await engine.publish(DEFAULT_TENANT, "x.y", {})
        await engine.publish(DEFAULT_TENANT, "x.y", {}, idempotency_key="k")
        await engine.publish(DEFAULT_TENANT, "x.y", {}, idempotency_key="k")  # a repeat
        await run_until(engine, [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], 4)
    counts = {(e, o): n for e, o, n in engine.counters.by_endpoint() if n}
    # the sender's script is per URL: a's first request times out, every later one succeeds
    assert counts == {
        (a.id, "retry"): 1,
        (a.id, "delivered"): 2,
        (b.id, "failed"): 2,
    }
    assert engine.counters.published == 2
    buckets, _ = engine.counters.latency()
    assert buckets[-1][1] == 5


async def test_a_failing_observer_does_not_stop_deliveries(tmp_path: Path) -> None:
    heard: list[AttemptResult] = []

    def observer(result: AttemptResult) -> None:
        heard.append(result)
        raise RuntimeError("observer bug")

    sender = ScriptedSender({"https://a.example/": [ok()]})
    store = MemoryStore()
    engine = Engine(settings(tmp_path), store=store, sender=sender, run_worker=False)
    worker = Worker(store, sender, engine.settings, on_result=observer)
    async with engine:
        await engine.create_endpoint(DEFAULT_TENANT, url="https://a.example/", event_types=["*"])
        for _ in range(3):
            await engine.publish(DEFAULT_TENANT, "x.y", {})
        await worker.start()
        try:
            await run_until(engine, [DeliveryStatus.DELIVERED], 3)
            assert worker.alive
        finally:
            await worker.stop()
    assert [r.status for r in heard] == [DeliveryStatus.DELIVERED] * 3


@pytest.mark.parametrize("cap", [0, 1])
async def test_the_cap_comes_from_the_settings(tmp_path: Path, cap: int) -> None:
    engine = Engine(
        settings(tmp_path).replace(metrics_endpoint_cap=cap), store=MemoryStore(), run_worker=False
    )
    assert engine.counters.endpoint_cap == cap
