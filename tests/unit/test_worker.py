"""The worker on the in-memory store with a scripted sender: decisions carried out, no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from hookd import crypto
from hookd.config import Settings, WorkerSettings
from hookd.delivery.sender import Outcome
from hookd.delivery.worker import SigningKeys, Worker, build_headers, redact_headers
from hookd.domain.models import DEFAULT_TENANT, DeliveryStatus, EndpointStatus, Secret
from hookd.engine import Engine
from hookd.policy import signing
from hookd.policy.retry import ErrorKind
from hookd.store.memory import MemoryStore
from hookd.store.port import DeliveryFilter


class ScriptedSender:
    """The Sender port answering from a script: url -> list of outcomes (the last repeats)."""

    def __init__(self, script: Mapping[str, list[Outcome]]) -> None:
        self.script = script
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Outcome:
        self.sent.append((url, dict(headers), body))
        outcomes = self.script[url]
        tries = sum(1 for u, _, _ in self.sent if u == url)
        return outcomes[min(tries, len(outcomes)) - 1]

    async def close(self) -> None:
        return None


def ok(status: int = 200, **headers: str) -> Outcome:
    return Outcome(duration_ms=1.0, status=status, response_headers=headers)


def fails(kind: ErrorKind) -> Outcome:
    return Outcome(duration_ms=1.0, error_kind=kind, error=f"{kind}: scripted")


FAST = {"kind": "schedule", "delays": [0, 0.01, 0.01], "jitter": 0}


async def run_until(engine: Engine, statuses: list[DeliveryStatus], count: int) -> None:
    for _ in range(200):
        page = await engine.list_deliveries(None, DeliveryFilter(statuses=statuses))
        if len(page.items) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached {count} deliveries in {statuses}")


def make_engine(tmp_path: Path, sender: ScriptedSender) -> Engine:
    settings = Settings(
        db_path=tmp_path / "unused.db",
        secret_key=Secret(crypto.generate_key()),
        worker=WorkerSettings(poll_interval=0.01),
    )
    return Engine(settings, store=MemoryStore(), sender=sender)


async def test_decisions_are_carried_out(tmp_path: Path) -> None:
    sender = ScriptedSender(
        {
            "https://ok.example/": [ok(500), ok(200)],
            "https://reject.example/": [ok(422)],
            "https://down.example/": [fails(ErrorKind.CONNECTION)],
            "https://gone.example/": [ok(410)],
        }
    )
    async with make_engine(tmp_path, sender) as engine:
        ids = {}
        for url in sender.script:
            endpoint, _ = await engine.create_endpoint(
                DEFAULT_TENANT, url=url, event_types=["*"], retry_policy=FAST
            )
            ids[url] = endpoint.id
        await engine.publish(DEFAULT_TENANT, "a.b", {"k": "v"})
        await run_until(engine, [DeliveryStatus.DELIVERED], 1)
        await run_until(engine, [DeliveryStatus.FAILED], 1)
        await run_until(engine, [DeliveryStatus.DEAD], 1)
        await run_until(engine, [DeliveryStatus.PARKED], 1)
        gone = await engine.get_endpoint(None, ids["https://gone.example/"])
        assert gone.status is EndpointStatus.DISABLED
        # the 410 also published endpoint.disabled, which the others (subscribed to *) get
        sends = [u for u, _, body in sender.sent if b'"type":"a.b"' in body]
        assert sends.count("https://ok.example/") == 2
        assert sends.count("https://reject.example/") == 1
        assert sends.count("https://down.example/") == 3
        assert sends.count("https://gone.example/") == 1


async def test_stop_releases_nothing_when_idle_and_can_restart(tmp_path: Path) -> None:
    sender = ScriptedSender({"https://ok.example/": [ok()]})
    engine = make_engine(tmp_path, sender)
    await engine.open()
    assert engine.worker is not None and engine.worker.alive
    await engine.close()
    assert not engine.worker.alive


def test_headers_are_signed_and_custom_values_redacted_for_logs(tmp_path: Path) -> None:
    import time

    from hookd.domain.models import Endpoint, EndpointSecret
    from hookd.policy import retry

    secret = signing.generate_secret()
    now = time.time()
    endpoint = Endpoint(
        id="ep_x",
        tenant_id=DEFAULT_TENANT,
        url="https://x.example/",
        event_types=("*",),
        secrets=(EndpointSecret(Secret(secret), now),),
        retry_policy=retry.DEFAULT_POLICY,
        timeout=5.0,
        headers={"X-Api-Token": "t0ken"},
        created_at=now,
        updated_at=now,
    )
    headers = build_headers(endpoint, "dlv_1", b'{"a":1}', now)
    signing.verify(secret, headers, b'{"a":1}', now=now)
    assert headers["X-Api-Token"] == "t0ken"
    logged = redact_headers(headers)
    assert logged["X-Api-Token"] == "[redacted]"
    assert logged["webhook-signature"] == headers["webhook-signature"]


def test_worker_ids_are_unique() -> None:
    store = MemoryStore()
    settings = Settings()
    sender = ScriptedSender({})
    assert Worker(store, sender, settings).id != Worker(store, sender, settings).id


def test_signing_keys_are_cached_until_the_endpoint_changes_or_a_grace_ends() -> None:
    import dataclasses
    import time

    from hookd.domain.models import Endpoint, EndpointSecret
    from hookd.policy import retry

    old, new = signing.generate_secret(), signing.generate_secret()
    now = time.time()
    endpoint = Endpoint(
        id="ep_x",
        tenant_id=DEFAULT_TENANT,
        url="https://x.example/",
        event_types=("*",),
        secrets=(EndpointSecret(Secret(new), now), EndpointSecret(Secret(old), now - 9, now + 60)),
        retry_policy=retry.DEFAULT_POLICY,
        timeout=5.0,
        created_at=now,
        updated_at=now,
    )
    cache = SigningKeys()
    keys = cache.at(endpoint, now)
    assert keys == [signing.decode_secret(new), signing.decode_secret(old)]
    assert cache.at(endpoint, now + 30) is keys  # cached
    assert cache.at(endpoint, now + 61) == [signing.decode_secret(new)]  # the grace ended
    rotated = dataclasses.replace(endpoint, secrets=(EndpointSecret(Secret(old), now),))
    assert cache.at(rotated, now + 62) == [signing.decode_secret(old)]  # a new object
    body = b'{"a":1}'
    headers = build_headers(rotated, "dlv_1", body, now, keys=cache.at(rotated, now))
    signing.verify(old, headers, body, now=now)
