"""Event types over HTTP: the catalogue (CRUD, archive) and publishing against its schemas."""

from __future__ import annotations

from typing import Any

import httpx

from hookd.config import Settings
from hookd.engine import Engine
from support.api import api_over, problem

AMOUNT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0},
        "side": {"type": "string", "enum": ["buy", "sell"]},
        "legs": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["amount", "side"],
}


def paths(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body["errors"]]


async def declare(client: httpx.AsyncClient, name: str = "order.filled", **body: Any) -> Any:
    body.setdefault("schema", AMOUNT)
    body.setdefault("example", {"amount": 1, "side": "buy"})
    response = await client.post("/v1/event-types", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def publish(client: httpx.AsyncClient, type: str, payload: Any) -> httpx.Response:
    return await client.post("/v1/events", json={"type": type, "payload": payload})


# the catalogue --------------------------------------------------------------------------------
async def test_create_read_list_change(admin: httpx.AsyncClient) -> None:
    created = await declare(admin, description="an order was filled")
    assert created["id"].startswith("et_")
    assert created["tenant_id"] == "default"
    assert created["name"] == "order.filled"
    assert created["schema"] == AMOUNT
    assert created["example"] == {"amount": 1, "side": "buy"}
    assert created["archived"] is False
    assert (await admin.get("/v1/event-types/order.filled")).json() == created
    listed = (await admin.get("/v1/event-types")).json()
    assert listed == {"data": [created], "next_cursor": None}

    changed = await admin.patch("/v1/event-types/order.filled", json={"description": "filled"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["description"] == "filled"
    assert body["schema"] == AMOUNT  # untouched
    assert body["updated_at"] >= created["updated_at"]
    cleared = (
        await admin.patch("/v1/event-types/order.filled", json={"schema": None, "example": None})
    ).json()
    assert cleared["schema"] is None and cleared["example"] is None
    assert cleared["description"] == "filled"


async def test_delete_archives_idempotently_and_patch_restores(admin: httpx.AsyncClient) -> None:
    await declare(admin)
    await declare(admin, "order.canceled")
    for _ in range(2):
        response = await admin.delete("/v1/event-types/order.filled")
        assert response.status_code == 200, response.text
        assert response.json()["archived"] is True
    assert (await admin.get("/v1/event-types/order.filled")).json()["archived"] is True
    live = (await admin.get("/v1/event-types")).json()["data"]
    assert [t["name"] for t in live] == ["order.canceled"]
    every = (await admin.get("/v1/event-types", params={"include_archived": True})).json()
    assert {t["name"] for t in every["data"]} == {"order.filled", "order.canceled"}

    body = problem(await publish(admin, "order.filled", {"amount": 1, "side": "buy"}), 422)
    assert paths(body) == ["type"]
    assert "archived" in body["errors"][0]["message"]

    restored = await admin.patch("/v1/event-types/order.filled", json={"archived": False})
    assert restored.json()["archived"] is False
    assert (await publish(admin, "order.filled", {"amount": 1, "side": "buy"})).status_code == 202
    problem(await admin.delete("/v1/event-types/never.declared"), 404)


async def test_names_are_unique_per_tenant(
    admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    await declare(admin)
    body = problem(await admin.post("/v1/event-types", json={"name": "order.filled"}), 409)
    assert "order.filled" in body["detail"]
    mine = await declare(acme)  # the same name in another tenant
    assert mine["tenant_id"] == "acme"
    problem(await acme.get("/v1/event-types/order.filled", params={"tenant_id": "default"}), 404)
    acme_view = await admin.get("/v1/event-types/order.filled", params={"tenant_id": "acme"})
    assert acme_view.json()["id"] == mine["id"]
    assert len((await admin.get("/v1/event-types")).json()["data"]) == 2
    only = (await admin.get("/v1/event-types", params={"tenant_id": "acme"})).json()["data"]
    assert [t["id"] for t in only] == [mine["id"]]
    archived = await admin.delete("/v1/event-types/order.filled", params={"tenant_id": "acme"})
    assert archived.json()["id"] == mine["id"]
    assert (await admin.get("/v1/event-types/order.filled")).json()["archived"] is False


async def test_a_bad_schema_lists_every_problem(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/event-types",
        json={
            "name": "bad",
            "schema": {
                "type": "strng",
                "required": "amount",
                "properties": {"x": {"$ref": "https://example.com/s.json"}},
            },
        },
    )
    body = problem(response, 422)
    assert sorted(paths(body)) == ["schema/required", "schema/type"]
    body = problem(
        await admin.post(
            "/v1/event-types",
            json={"name": "bad", "schema": {"properties": {"x": {"$ref": "other.json"}}}},
        ),
        422,
    )
    assert paths(body) == ["schema/properties/x/$ref"]
    body = problem(
        await admin.post(
            "/v1/event-types",
            json={"name": "bad", "schema": {"$schema": "http://json-schema.org/draft-04/schema"}},
        ),
        422,
    )
    assert paths(body) == ["schema/$schema"]
    # a pattern RE2 cannot take (a lookahead): refused now, not a backtracking check later
    lookahead = {"properties": {"code": {"type": "string", "pattern": "^(?=.*\\d)\\w+$"}}}
    body = problem(
        await admin.post("/v1/event-types", json={"name": "bad", "schema": lookahead}), 422
    )
    assert paths(body) == ["schema/properties/code/pattern"]


async def test_the_example_must_match_the_schema(admin: httpx.AsyncClient) -> None:
    body = problem(
        await admin.post(
            "/v1/event-types",
            json={"name": "t", "schema": AMOUNT, "example": {"amount": -5, "legs": [1, "x"]}},
        ),
        422,
    )
    assert paths(body) == ["example", "example/amount", "example/legs/1"]
    await declare(admin)
    # a new schema must accept the stored example, and a new example the stored schema
    stricter = {**AMOUNT, "required": ["amount", "side", "venue"]}
    body = problem(
        await admin.patch("/v1/event-types/order.filled", json={"schema": stricter}), 422
    )
    assert paths(body) == ["example"]
    body = problem(
        await admin.patch("/v1/event-types/order.filled", json={"example": {"amount": "1"}}), 422
    )
    assert paths(body) == ["example", "example/amount"]
    both = {"schema": stricter, "example": {"amount": 1, "side": "sell", "venue": "x"}}
    assert (await admin.patch("/v1/event-types/order.filled", json=both)).status_code == 200


async def test_event_type_requests_are_checked(admin: httpx.AsyncClient) -> None:
    body = problem(
        await admin.post(
            "/v1/event-types",
            json={"name": "not a name!", "description": "x" * 1025, "colour": "red"},
        ),
        422,
    )
    assert paths(body) == ["colour"]  # shape first, then values
    body = problem(
        await admin.post(
            "/v1/event-types", json={"name": "not a name!", "description": "x" * 1025}
        ),
        422,
    )
    assert paths(body) == ["name", "description"]
    body = problem(await admin.post("/v1/event-types", json={"name": "t", "schema": [1]}), 422)
    assert paths(body) == ["schema"]
    await declare(admin)
    body = problem(await admin.patch("/v1/event-types/order.filled", json={"archived": None}), 422)
    assert paths(body) == ["archived"]
    problem(await admin.patch("/v1/event-types/nope", json={"description": "x"}), 404)


# publishing -----------------------------------------------------------------------------------
async def test_publishing_checks_the_payload_and_lists_every_violation(
    admin: httpx.AsyncClient,
) -> None:
    await declare(admin)
    assert (await publish(admin, "order.filled", {"amount": 3, "side": "sell"})).status_code == 202
    body = problem(
        await publish(admin, "order.filled", {"amount": -1, "side": "hold", "legs": [1, "2", 3.5]}),
        422,
    )
    assert body["type"] == "https://hookd.dev/problems/validation-error"
    assert paths(body) == ["payload/amount", "payload/legs/1", "payload/legs/2", "payload/side"]
    messages = {e["path"]: e["message"] for e in body["errors"]}
    assert messages["payload/amount"] == "-1 is less than the minimum of 0"
    assert "'buy'" in messages["payload/side"]
    body = problem(await publish(admin, "order.filled", {}), 422)
    assert body["errors"] == [
        {"path": "payload", "message": "'amount' is a required property"},
        {"path": "payload", "message": "'side' is a required property"},
    ]
    events = (await admin.get("/v1/events")).json()["data"]
    assert len(events) == 1  # only the valid one was stored


async def test_unknown_types_are_accepted_by_default(admin: httpx.AsyncClient) -> None:
    assert (await publish(admin, "never.declared", {"anything": [1]})).status_code == 202


async def test_a_schema_change_applies_to_the_next_publish(admin: httpx.AsyncClient) -> None:
    await declare(admin, schema={"properties": {"n": {"type": "integer"}}}, example=None)
    problem(await publish(admin, "order.filled", {"n": "x"}), 422)
    assert (await publish(admin, "order.filled", {"n": 1})).status_code == 202  # cached
    await admin.patch("/v1/event-types/order.filled", json={"schema": {"properties": {}}})
    assert (await publish(admin, "order.filled", {"n": "x"})).status_code == 202
    await admin.patch(
        "/v1/event-types/order.filled", json={"schema": {"properties": {"n": {"type": "null"}}}}
    )
    problem(await publish(admin, "order.filled", {"n": 1}), 422)


async def test_types_belong_to_their_tenant(
    admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    await declare(acme)
    problem(await publish(acme, "order.filled", {"amount": "x"}), 422)
    # the default tenant has no such type: anything goes there
    assert (await publish(admin, "order.filled", {"amount": "x"})).status_code == 202
    # an admin publishing into acme meets acme's schema
    response = await admin.post(
        "/v1/events",
        json={"type": "order.filled", "payload": {"amount": "x"}, "tenant_id": "acme"},
    )
    problem(response, 422)


async def test_unknown_types_can_be_refused(settings: Settings) -> None:
    strict = settings.replace(allow_unknown_event_types=False)
    async with (
        Engine(strict, run_worker=False) as engine,
        api_over(engine) as api,
        api.client() as client,
    ):
        body = problem(await publish(client, "never.declared", {}), 422)
        assert paths(body) == ["type"]
        assert "unknown event type" in body["errors"][0]["message"]
        await declare(client, schema=None, example=None)
        assert (await publish(client, "order.filled", {"x": 1})).status_code == 202
