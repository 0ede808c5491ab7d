"""The batch publish path's shortcuts give what the general path gives: the fast path's reading
of a plain body (`plain_batch`) is the model's, the engine's one pass over a batch
(`Engine._batch_events`) finds what `make_event` finds item by item, and `ids.new_ids` makes
the ids `new_id` makes, sorted."""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import types
from typing import Any

import pydantic
import pytest
from test_ids import decode

from hookd.api import schemas
from hookd.api.routes import events as events_route
from hookd.api.routes.events import event_input, plain_batch
from hookd.config import Settings
from hookd.domain import errors, ids
from hookd.domain.errors import Problem
from hookd.domain.models import Event
from hookd.engine import MAX_BATCH, MAX_TIMESTAMP, Engine, EventInput
from hookd.store.memory import MemoryStore

# plain_batch -----------------------------------------------------------------------------------
VALUES: list[Any] = [None, True, False, 0, 3, -11, 2.5, "", "a.b", "x" * 300, [], [1], {}, {"a": 1}]
ITEM_FIELDS = ["type", "payload", "idempotency_key", "priority", "occurred_at", "extra"]
TIMES = ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00", "yesterday", 1_700_000_000]


def a_value(rng: random.Random) -> Any:
    return rng.choice([*VALUES, *TIMES])


def an_item(rng: random.Random) -> Any:
    """Mostly plain items, some with one field off, a few not objects at all."""
    if rng.random() < 0.05:
        return a_value(rng)
    item: dict[str, Any] = {"type": "order.filled", "payload": {"n": rng.randrange(100)}}
    if rng.random() < 0.3:
        item["idempotency_key"] = rng.choice([None, "k", ""])
    if rng.random() < 0.3:
        item["priority"] = rng.choice([None, 0, 10, -11])
    for _ in range(rng.choice([0, 0, 1, 2])):  # change, add or drop a field
        field = rng.choice(ITEM_FIELDS)
        if rng.random() < 0.2:
            item.pop(field, None)
        else:
            item[field] = a_value(rng)
    return item


def a_body(rng: random.Random) -> Any:
    body: dict[str, Any] = {"events": [an_item(rng) for _ in range(rng.choice([0, 1, 2, 5]))]}
    if rng.random() < 0.3:
        body["tenant_id"] = rng.choice([None, "acme", 7, ""])
    if rng.random() < 0.05:
        body["events"] = a_value(rng)
    if rng.random() < 0.05:
        body["extra"] = 1
    if rng.random() < 0.03:
        return a_value(rng)
    return body


def read_by_the_model(body: Any) -> tuple[str | None, list[EventInput]] | None:
    try:
        model = schemas.EventBatch.model_validate(body)
    except pydantic.ValidationError:
        return None
    return model.tenant_id, [event_input(item) for item in model.events]


def test_a_plain_body_reads_as_the_model_reads_it() -> None:
    rng = random.Random(6)
    plain = 0
    for _ in range(5000):
        body = a_body(rng)
        found = plain_batch(body)
        if found is not None:
            plain += 1
            assert found == read_by_the_model(body), body
    assert plain > 500  # the common shape does take the shortcut


@pytest.mark.parametrize(
    "body",
    [
        {"events": [{"type": "a.b", "payload": {}}]},
        {"events": [{"type": "a.b", "payload": {"x": [1, {"y": None}]}}], "tenant_id": "acme"},
        {"events": [{"type": "", "payload": {}, "idempotency_key": None, "priority": None}]},
        {"events": [{"type": "a.b", "payload": {}, "idempotency_key": "k", "priority": 99}]},
        {"events": [{"type": "a.b", "payload": {}}] * MAX_BATCH, "tenant_id": None},
    ],
)
def test_plain_bodies_take_the_shortcut(body: Any) -> None:
    # values the engine refuses (an empty type, a priority out of range) are still plain: the
    # model takes them too, and the engine names the problem either way
    assert plain_batch(body) is not None
    assert plain_batch(body) == read_by_the_model(body)


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": [{"type": "a.b", "payload": {}}] * (MAX_BATCH + 1)},
        {"events": [{"type": "a.b", "payload": {}, "occurred_at": "2026-11-22T10:00:00Z"}]},
        {"events": [{"type": "a.b", "payload": {}, "priority": True}]},
        {"events": [{"type": "a.b", "payload": {}, "priority": 1.0}]},
        {"events": [{"type": "a.b", "payload": []}]},
        {"events": [{"type": "a.b"}]},
        {"events": [{"type": 1, "payload": {}}]},
        {"events": [{"type": "a.b", "payload": {}, "idempotency_key": 5}]},
        {"events": [{"type": "a.b", "payload": {}, "tenant_id": "acme"}]},
        {"events": [{"type": "a.b", "payload": {}}], "tenant_id": 5},
        {"events": [{"type": "a.b", "payload": {}}], "more": True},
        {"events": {"type": "a.b", "payload": {}}},
        [{"type": "a.b", "payload": {}}],
    ],
)
def test_anything_else_is_left_to_the_model(body: Any) -> None:
    assert plain_batch(body) is None


def test_the_shortcut_knows_every_field_of_the_models() -> None:
    # a field added to the batch models must be taught to plain_batch (or left to the model)
    assert set(schemas.EventBatch.model_fields) == set(events_route._BATCH_FIELDS)
    assert set(schemas.EventBatchItem.model_fields) == {
        *events_route._PLAIN_ITEM_FIELDS,
        "occurred_at",  # parsed by the model: a body with one is not plain
    }


# Engine._batch_events ------------------------------------------------------------------------
class Level(enum.IntEnum):
    HIGH = 5


NAMES = ["order.filled", "a.b", "not a type", "", "x" * 129, "a..b", "a.b-c_d.E9"]
PAYLOADS: list[Any] = [
    {"n": 1},
    {},
    {"big": "x" * 200},  # over the 128-byte limit below
    [1, 2],
    "text",
    types.MappingProxyType({"n": 2}),  # a Mapping, not a dict
    {"not json": {1, 2}},
]
KEYS: list[Any] = [None, None, "k", "", "k" * 256, "k" * 257]
OCCURRED: list[Any] = [None, None, 0.0, 1_700_000_000.5, -1.0, MAX_TIMESTAMP, math.nan]
PRIORITIES: list[Any] = [None, None, 0, -10, 10, 11, -11, True, 1.5, Level.HIGH]


def item_by_item(
    engine: Engine, items: list[EventInput], now: float
) -> tuple[list[tuple[int, Event]], list[Problem]]:
    """What `publish_batch` did before `_batch_events`: `make_event` for each item."""
    made: list[tuple[int, Event]] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        where = f"events[{index}]."
        try:
            event = engine.make_event(
                "acme",
                item.type,
                item.payload,
                idempotency_key=item.idempotency_key,
                occurred_at=item.occurred_at,
                priority=item.priority,
                now=now,
            )
        except errors.ValidationError as exc:
            problems.extend(
                dataclasses.replace(p, path=where + p.path)
                for p in exc.problems or [Problem("", exc.message)]
            )
            continue
        except errors.PayloadTooLarge as exc:
            problems.append(Problem(where + "payload", str(exc)))
            continue
        made.append((index, event))
    return made, problems


def test_one_pass_over_a_batch_finds_what_make_event_finds() -> None:
    engine = Engine(Settings(max_payload_bytes=128), store=MemoryStore(), run_worker=False)
    rng = random.Random(7)
    now = 1_800_000_000.25
    for _ in range(400):
        items = [
            EventInput(
                rng.choice(NAMES),
                rng.choice(PAYLOADS),
                rng.choice(KEYS),
                rng.choice(OCCURRED),
                rng.choice(PRIORITIES),
            )
            for _ in range(rng.randrange(1, 12))
        ]
        events, indexes, problems = engine._batch_events("acme", items, now=now)
        expected, expected_problems = item_by_item(engine, items, now)
        assert problems == expected_problems
        assert indexes == [index for index, _ in expected]
        assert [dataclasses.replace(e, id="") for e in events] == [
            dataclasses.replace(e, id="") for _, e in expected
        ]
        assert [e.id for e in events] == sorted(e.id for e in events)  # in the batch's order
        assert all(decode(e.id) >> 80 == int(now * 1000) for e in events)


# ids.new_ids -----------------------------------------------------------------------------------
def test_new_ids_are_sorted_ids_of_one_time() -> None:
    made = ids.new_ids("dlv", 5000, now=1_700_000_000.123)
    assert made == sorted(made)
    assert len(set(made)) == 5000
    for ident in made:
        assert ids.has_prefix(ident, "dlv")
        assert decode(ident) >> 80 == 1_700_000_000_123
    assert ids.new_ids("dlv", 3, now=1.0)[0][:14] == ids.new_id("dlv", now=1.0)[:14]
    assert ids.new_ids("evt", 0) == []


def test_new_ids_spread_their_random_part_evenly() -> None:
    made = ids.new_ids("x", 20_000)
    # every digit of the random part is uniform over the 32: each shows up about 1/32 of the time
    for position in (12, 19, 27):
        counts: dict[str, int] = {}
        for ident in made:
            counts[ident[position]] = counts.get(ident[position], 0) + 1
        assert len(counts) == 32
        assert max(counts.values()) < 2 * min(counts.values())


def test_new_ids_at_increase_along_each_run_of_one_time() -> None:
    times = [5.0, 5.0, 5.0, 7.0, 7.0, 5.0, 5.0, 9.0]
    made = ids.new_ids_at("dlv", times)
    assert [decode(i) >> 80 for i in made] == [int(t * 1000) for t in times]
    assert made[0:3] == sorted(made[0:3])
    assert made[3:5] == sorted(made[3:5])
    assert made[5:7] == sorted(made[5:7])
    assert len(set(made)) == len(times)
    assert ids.new_ids_at("dlv", []) == []
