"""The engine's event-type rules on the in-memory store: compiled schemas are cached per version,
batches are all or nothing with bounded problem lists, keys and tenants are checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hookd import engine as engine_module
from hookd.config import Settings
from hookd.domain import errors
from hookd.engine import MAX_BATCH_PROBLEMS, Engine, EventInput
from hookd.policy import schemas
from hookd.store.memory import MemoryStore

SCHEMA: dict[str, Any] = {"properties": {"n": {"type": "integer"}, "m": {"type": "integer"}}}


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with Engine(Settings(), store=MemoryStore(), run_worker=False) as running:
        yield running


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every schema the engine compiles, in order."""
    seen: list[object] = []
    original = schemas.compile_schema

    def counting(schema: Any) -> Any:
        seen.append(schema)
        return original(schema)

    monkeypatch.setattr(engine_module.schemas, "compile_schema", counting)
    return seen


async def test_a_schema_is_compiled_once_per_version(
    engine: Engine, compiled: list[object]
) -> None:
    await engine.create_event_type("default", name="a.b", schema=SCHEMA)
    compiled.clear()  # (creating checks the example with its own validator)
    for n in range(5):
        await engine.publish("default", "a.b", {"n": n})
    assert compiled == [SCHEMA]
    changed = {"properties": {"n": {"type": "string"}}}
    await engine.update_event_type("default", "a.b", schema=changed)
    compiled.clear()
    with pytest.raises(errors.ValidationError):
        await engine.publish("default", "a.b", {"n": 1})
    await engine.publish("default", "a.b", {"n": "1"})
    assert compiled == [changed]


async def test_an_edit_always_moves_updated_at(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module.time, "time", lambda: 1000.0)
    created = await engine.create_event_type("default", name="a.b", schema=SCHEMA)
    changed = await engine.update_event_type("default", "a.b", schema={"type": "object"})
    assert changed.updated_at > created.updated_at  # the clock stood still; the version did not
    same = await engine.update_event_type("default", "a.b", schema={"type": "object"})
    assert same == changed  # no change, no new version


async def test_a_batch_lists_a_bounded_number_of_problems(engine: Engine) -> None:
    await engine.create_event_type("default", name="a.b", schema=SCHEMA)
    items = [EventInput("a.b", {"n": "x", "m": "y"}) for _ in range(1000)]
    with pytest.raises(errors.ValidationError) as refused:
        await engine.publish_batch("default", items)
    problems = refused.value.problems
    assert len(problems) == MAX_BATCH_PROBLEMS + 1
    assert problems[0].path == "events[0].payload/m"
    assert problems[-1] == errors.Problem("events", "1000 more not listed")
    assert "2000 problems" in refused.value.message
    assert engine.store.events == {}  # type: ignore[attr-defined]


async def test_a_batch_names_the_item_of_each_problem(engine: Engine) -> None:
    items = [
        EventInput("a.b", {}),
        EventInput("bad type", {}, idempotency_key=""),
        EventInput("a.b", {"x": "y" * 300_000}),
    ]
    with pytest.raises(errors.ValidationError) as refused:
        await engine.publish_batch("default", items)
    assert [p.path for p in refused.value.problems] == [
        "events[1].type",
        "events[1].idempotency_key",
        "events[2].payload",
    ]
    with pytest.raises(errors.ValidationError) as empty:
        await engine.publish_batch("default", [])
    assert [p.path for p in empty.value.problems] == ["events"]
    with pytest.raises(errors.ValidationError):
        await engine.publish_batch("Bad Tenant", [EventInput("a.b", {})])


async def test_tenant_ids_are_checked_where_resources_are_made(engine: Engine) -> None:
    for make in (
        lambda: engine.create_api_key("Not OK"),
        lambda: engine.create_event_type("Not OK", name="a.b"),
        lambda: engine.publish("Not OK", "a.b", {}),
        lambda: engine.create_endpoint("Not OK", url="https://example.com", event_types=["*"]),
    ):
        with pytest.raises(errors.ValidationError) as refused:
            await make()
        assert "tenant_id" in [p.path for p in refused.value.problems]


async def test_revoking_keys(engine: Engine) -> None:
    admin, _ = await engine.create_api_key(None)
    with pytest.raises(errors.Conflict):
        await engine.revoke_api_key(None, admin.id)
    tenant, secret = await engine.create_api_key("acme")
    with pytest.raises(errors.NotFound):
        await engine.revoke_api_key("other", tenant.id)
    revoked = await engine.revoke_api_key("acme", tenant.id)
    assert revoked.revoked_at is not None
    with pytest.raises(errors.Unauthorized):
        await engine.authenticate(secret)
