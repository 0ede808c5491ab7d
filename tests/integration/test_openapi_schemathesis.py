"""The API against its own OpenAPI document, with schemathesis.

Schemathesis' engine (what its CLI runs) generates requests to every operation from
`/openapi.json`: the coverage phase's boundary values, then valid and invalid requests (the
fuzzing phase), then stateful sequences that reuse the ids the API returns (create an endpoint,
pause it, rotate its secret, ...). It runs against the ASGI app in process, on a real engine over
SQLite, authenticated with an admin key, rate limits raised out of reach.

Checks: schemathesis' defaults but two, which assume things this API deliberately does not do:

- `positive_data_acceptance` takes every request the document allows to be valid. The engine also
  checks meaning the document cannot state (a URL's host, a retry policy's delays, a payload
  against its event type's JSON Schema, a stats window of at most 90 days, ...) and answers a
  well-formed but meaningless request with the documented 422 problem.
- `use_after_free` takes DELETE to remove a resource. `DELETE /v1/event-types/{name}` archives
  the type (issue 3): it stays readable, and PATCH restores it.

Everything else must hold for every case: no 5xx, only documented status codes, content types,
headers and bodies, a 4xx for invalid input, a 401 without the key, 405 with `Allow` for other
methods; and no response may take over 5 s. Deterministic: a fixed seed, no example database;
the cases run are counted, and a run that stops early fails.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from pathlib import Path

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, StopReason, events
from schemathesis.python import asgi as schemathesis_asgi

from hookd import crypto
from hookd.api import create_app, metrics
from hookd.api.jsonbody import StrictJSONRoute
from hookd.api.routes import ROUTERS
from hookd.config import RateLimit, Settings
from hookd.delivery.sender import Outcome
from hookd.domain.models import Secret
from hookd.engine import Engine
from hookd.policy.retry import ErrorKind

ADMIN_KEY = "hk_schemathesis_admin_key_0123456789abcdefgh"
MAX_EXAMPLES = 25  # per operation and generation mode (valid, invalid) in the fuzzing phase
MIN_CASES = 500
SEED = 20261122
RESPONSE_DEADLINE = 5.0  # seconds a single response may take (the max_response_time check)
#: No rate limit is hit during the run (the limits themselves are tested elsewhere).
UNLIMITED = RateLimit(per_second=1_000_000.0, burst=1_000_000)


class OfflineSender:
    """Test sends go nowhere: the URLs schemathesis makes up are not ours to call."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Outcome:
        return Outcome(duration_ms=0.1, error_kind=ErrorKind.CONNECTION, error="offline test")

    async def close(self) -> None:
        return None


def make_schema(tmp_path: Path) -> schemathesis.BaseSchema:
    settings = Settings(
        db_path=tmp_path / "hookd.db",
        secret_key=Secret(crypto.generate_key()),
        api_key=Secret(ADMIN_KEY),
        rate_limit_per_key=UNLIMITED,
        rate_limit_per_ip=UNLIMITED,
        rate_limit_test_send=UNLIMITED,
    )
    engine = Engine(settings, run_worker=False, sender=OfflineSender())

    async def bootstrap(engine: Engine) -> None:
        await engine.bootstrap_admin_key()

    # The app's lifespan opens (and later closes) the engine in the event loop schemathesis runs
    # the app on.
    app = create_app(engine, on_startup=bootstrap)
    for router in (*ROUTERS, metrics.router):  # strict JSON parsing (hookd.api.jsonbody)
        for route in router.routes:
            assert isinstance(route, StrictJSONRoute), f"{route}: no route_class"
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "checks": {
                "positive_data_acceptance": {"enabled": False},
                "use_after_free": {"enabled": False},
                "max_response_time": RESPONSE_DEADLINE,
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def test_the_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    schema = make_schema(tmp_path)
    stopped: StopReason | None = None
    cases: collections.Counter[str] = collections.Counter()
    failures: dict[tuple[str, str], str] = {}
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                cases[event.phase.value] += len(event.recorder.cases)
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.status is Status.FAILURE and check.failure_info is not None:
                            info = check.failure_info
                            failures.setdefault(
                                (event.label or "?", check.name),
                                f"{info.failure.title}: {info.failure.message}\n{info.code_sample}",
                            )
            elif isinstance(event, events.NonFatalError):
                failures[(event.label, "error")] = f"{event.value!r}\n{event.info.code_sample}"
            elif isinstance(event, events.FatalError):
                failures[("engine", "fatal")] = repr(event.exception)
            elif isinstance(event, events.EngineFinished):
                stopped = event.stop_reason
                for failure in event.failures:
                    failures[("run", failure.title)] = failure.message
    finally:
        schemathesis_asgi.shutdown_lifespans()  # closes the engine
    report = "\n\n".join(f"{label} · {check}\n{text}" for (label, check), text in failures.items())
    assert not failures, f"{len(failures)} failures over {sum(cases.values())} cases:\n{report}"
    assert stopped is StopReason.COMPLETED, f"the run stopped early: {stopped}"
    assert sum(cases.values()) >= MIN_CASES, f"only {dict(cases)} cases ran"
    assert cases["coverage"] and cases["fuzzing"] and cases["stateful"], dict(cases)
