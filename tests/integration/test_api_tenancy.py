"""Tenant isolation over every route: a tenant key can never read, change or learn of another
tenant's resources.

The walker enumerates `app.routes` and fails for any route its table does not cover, so a new
route must be added here to pass. Every probe is sent with tenant `acme`'s key against tenant
`globex`'s ids (and names), and sent again with ids that never existed: the two answers must be
the same (status and body, up to the id itself), so an answer never tells "exists elsewhere"
from "does not exist". Answers that succeed must not mention anything of `globex`'s. At the end,
every `globex` resource is checked to be unchanged.

The rule for naming a tenant (`tenant_id` in a body or a query): a tenant key may name its own
tenant only; any other is a 404 "tenant … not found", whether or not the tenant exists. Asking
for an admin key (`POST /v1/keys` with `tenant_id: null`) is a 403: that is about what the key
may do, not about another tenant.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, routing

from hookd.config import Settings
from hookd.domain import ids
from hookd.domain.models import Attempt, AttemptResult, DeliveryStatus
from hookd.engine import Engine
from support.api import Api, api_over

FOREIGN = "globex"
NOBODY = "initech"  # a tenant that never existed
FOREIGN_TYPE = "globex.secret_type"
FOREIGN_URL = "https://globex.example/hook"
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}


@dataclass
class World:
    """globex's resources (what acme must never touch or see), and acme's own."""

    endpoint_id: str
    event_id: str
    delivery_id: str
    key_id: str
    key_prefix: str
    own_endpoint_id: str
    own_type: str = "acme.own_type"
    twins: dict[str, str] = field(default_factory=dict)  # foreign marker -> never-existed twin

    def markers(self) -> list[str]:
        return [
            self.endpoint_id,
            self.event_id,
            self.delivery_id,
            self.key_id,
            self.key_prefix,
            FOREIGN,
            FOREIGN_TYPE,
            FOREIGN_URL,
        ]


@dataclass(frozen=True)
class Probe:
    method: str
    url: str
    expect: int
    json: Any = None
    params: dict[str, Any] | None = None


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with Engine(settings, run_worker=False) as engine, api_over(engine) as api:
        yield api


async def build_world(api: Api) -> World:
    async with api.client() as admin:

        async def ok(method: str, url: str, **kwargs: Any) -> Any:
            response = await admin.request(method, url, **kwargs)
            assert response.is_success, response.text
            return response.json()

        endpoint = await ok(
            "POST",
            "/v1/endpoints",
            json={"url": FOREIGN_URL, "event_types": ["*"], "tenant_id": FOREIGN, "name": "g"},
        )
        await ok(
            "POST",
            "/v1/event-types",
            json={"name": FOREIGN_TYPE, "description": "globex's", "tenant_id": FOREIGN},
        )
        event = await ok(
            "POST",
            "/v1/events",
            json={"type": FOREIGN_TYPE, "payload": {"secret": 1}, "tenant_id": FOREIGN},
        )
        key = await ok("POST", "/v1/keys", json={"tenant_id": FOREIGN})
        (delivery,) = (await ok("GET", "/v1/deliveries", params={"tenant_id": FOREIGN}))["data"]
    await make_dead(api.engine, delivery["id"], endpoint["id"])

    async with api.client(api.tenant_key) as acme:
        own = await acme.post(
            "/v1/endpoints", json={"url": "https://acme.example/hook", "event_types": ["*"]}
        )
        await acme.post("/v1/event-types", json={"name": "acme.own_type"})
        await acme.post("/v1/events", json={"type": "acme.own_type", "payload": {}})
    world = World(
        endpoint_id=endpoint["id"],
        event_id=event["id"],
        delivery_id=delivery["id"],
        key_id=key["id"],
        key_prefix=key["prefix"],
        own_endpoint_id=own.json()["id"],
    )
    world.twins = {
        world.endpoint_id: ids.new_id(ids.ENDPOINT),
        world.event_id: ids.new_id(ids.EVENT),
        world.delivery_id: ids.new_id(ids.DELIVERY),
        world.key_id: ids.new_id(ids.API_KEY),
        FOREIGN_TYPE: "initech.secret_type",
        FOREIGN: NOBODY,
    }
    return world


async def make_dead(engine: Engine, delivery_id: str, endpoint_id: str) -> None:
    """Turn the foreign delivery into a dead letter (no worker runs here)."""
    now = time.time() + 1
    claimed = await engine.store.claim(worker_id="t", limit=10, now=now, lease_seconds=30)
    assert [c.id for c in claimed] == [delivery_id]
    attempt = Attempt(
        id=ids.new_id(ids.ATTEMPT),
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        number=1,
        started_at=now,
        duration_ms=1.0,
        outcome="reject",
        status_code=400,
    )
    result = AttemptResult(attempt, DeliveryStatus.DEAD, None)
    await engine.store.record(worker_id="t", results=[result], now=now)


def cases(w: World) -> dict[tuple[str, str], list[Probe]]:
    """Every route, with the probes that check it. A route missing here fails the walk."""
    ep, ev, dl, key, t = w.endpoint_id, w.event_id, w.delivery_id, w.key_id, FOREIGN_TYPE
    in_foreign = {"tenant_id": FOREIGN}
    new_endpoint = {"url": "https://x.example/h", "event_types": ["*"]}
    event = {"type": "a.b", "payload": {}}

    def listing(url: str, **filters: Any) -> list[Probe]:
        """Own tenant: 200 without a trace of globex (also when filtering on globex's ids);
        naming globex: 404."""
        probes = [Probe("GET", url, 200), Probe("GET", url, 404, params=in_foreign)]
        if filters:
            probes.append(Probe("GET", url, 200, params=filters))
        return probes

    return {
        # endpoints
        ("POST", "/v1/endpoints"): [
            Probe("POST", "/v1/endpoints", 404, json={**new_endpoint, **in_foreign}),
        ],
        ("GET", "/v1/endpoints"): listing("/v1/endpoints"),
        ("GET", "/v1/endpoints/{endpoint_id}"): [Probe("GET", f"/v1/endpoints/{ep}", 404)],
        ("PATCH", "/v1/endpoints/{endpoint_id}"): [
            Probe("PATCH", f"/v1/endpoints/{ep}", 404, json={"name": "pwned"}),
            Probe("PATCH", f"/v1/endpoints/{ep}", 404, json={"status": "paused"}),
        ],
        ("DELETE", "/v1/endpoints/{endpoint_id}"): [Probe("DELETE", f"/v1/endpoints/{ep}", 404)],
        ("POST", "/v1/endpoints/{endpoint_id}/pause"): [
            Probe("POST", f"/v1/endpoints/{ep}/pause", 404)
        ],
        ("POST", "/v1/endpoints/{endpoint_id}/resume"): [
            Probe("POST", f"/v1/endpoints/{ep}/resume", 404)
        ],
        ("POST", "/v1/endpoints/{endpoint_id}/secret/rotate"): [
            Probe("POST", f"/v1/endpoints/{ep}/secret/rotate", 404, json={})
        ],
        ("POST", "/v1/endpoints/{endpoint_id}/test"): [
            Probe("POST", f"/v1/endpoints/{ep}/test", 404, json={})
        ],
        ("GET", "/v1/endpoints/{endpoint_id}/stats"): [
            Probe("GET", f"/v1/endpoints/{ep}/stats", 404)
        ],
        ("GET", "/v1/endpoints/{endpoint_id}/health"): [
            Probe("GET", f"/v1/endpoints/{ep}/health", 404)
        ],
        # events
        ("POST", "/v1/events"): [Probe("POST", "/v1/events", 404, json={**event, **in_foreign})],
        ("POST", "/v1/events/batch"): [
            Probe("POST", "/v1/events/batch", 404, json={"events": [event], **in_foreign})
        ],
        ("GET", "/v1/events"): listing("/v1/events", type=t),
        ("GET", "/v1/events/{event_id}"): [Probe("GET", f"/v1/events/{ev}", 404)],
        # event types: addressed by name in the caller's tenant, or by naming a tenant
        ("POST", "/v1/event-types"): [
            Probe("POST", "/v1/event-types", 404, json={"name": "x.y", **in_foreign})
        ],
        ("GET", "/v1/event-types"): listing("/v1/event-types", include_archived="true"),
        ("GET", "/v1/event-types/{name}"): [
            Probe("GET", f"/v1/event-types/{t}", 404),
            Probe("GET", f"/v1/event-types/{t}", 404, params=in_foreign),
        ],
        ("PATCH", "/v1/event-types/{name}"): [
            Probe("PATCH", f"/v1/event-types/{t}", 404, json={"description": "pwned"}),
            Probe(
                "PATCH",
                f"/v1/event-types/{t}",
                404,
                json={"description": "pwned"},
                params=in_foreign,
            ),
        ],
        ("DELETE", "/v1/event-types/{name}"): [
            Probe("DELETE", f"/v1/event-types/{t}", 404),
            Probe("DELETE", f"/v1/event-types/{t}", 404, params=in_foreign),
        ],
        # deliveries and dead letters
        ("GET", "/v1/deliveries"): listing("/v1/deliveries", endpoint_id=ep, event_id=ev),
        ("GET", "/v1/deliveries/{delivery_id}"): [Probe("GET", f"/v1/deliveries/{dl}", 404)],
        ("POST", "/v1/deliveries/{delivery_id}/retry"): [
            Probe("POST", f"/v1/deliveries/{dl}/retry", 404)
        ],
        ("GET", "/v1/dead-letters"): listing("/v1/dead-letters", endpoint_id=ep),
        ("POST", "/v1/dead-letters/replay"): [
            Probe("POST", "/v1/dead-letters/replay", 202, json={"delivery_ids": [dl]}),
            Probe("POST", "/v1/dead-letters/replay", 202, json={"endpoint_id": ep}),
            Probe("POST", "/v1/dead-letters/replay", 202, json={}),
            Probe("POST", "/v1/dead-letters/replay", 404, json=in_foreign),
        ],
        ("DELETE", "/v1/dead-letters"): [
            Probe("DELETE", "/v1/dead-letters", 200, params={"older_than": "0"}),
            Probe("DELETE", "/v1/dead-letters", 200, params={"older_than": "0", "endpoint_id": ep}),
            Probe("DELETE", "/v1/dead-letters", 404, params={"older_than": "0", **in_foreign}),
        ],
        # API keys
        ("POST", "/v1/keys"): [
            Probe("POST", "/v1/keys", 404, json=in_foreign),
            Probe("POST", "/v1/keys", 403, json={"tenant_id": None}),
        ],
        ("GET", "/v1/keys"): listing("/v1/keys"),
        ("DELETE", "/v1/keys/{key_id}"): [Probe("DELETE", f"/v1/keys/{key}", 404)],
        # stats
        ("GET", "/v1/stats"): listing("/v1/stats"),
        # every tenant's endpoints are named there: admin keys only
        ("GET", "/metrics"): [Probe("GET", "/metrics", 403)],
        # no tenant data (public routes)
        ("GET", "/healthz"): [Probe("GET", "/healthz", 200)],
        ("GET", "/readyz"): [Probe("GET", "/readyz", 200)],
        ("GET", "/openapi.json"): [Probe("GET", "/openapi.json", 200)],
        ("GET", "/docs"): [Probe("GET", "/docs", 200)],
        ("GET", "/docs/oauth2-redirect"): [Probe("GET", "/docs/oauth2-redirect", 200)],
    }


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    found = set()
    for route in routing.iter_route_contexts(app.routes):
        assert route.methods, f"a route without methods ({route.path}): teach the walker"
        for method in route.methods:
            if method != "HEAD":
                found.add((method, route.path))
    return found


def swap(value: Any, mapping: dict[str, str]) -> Any:
    """`value` (a URL, params or a JSON body) with every marker replaced by its twin."""
    text = orjson.dumps(value).decode()
    for old, new in mapping.items():
        text = text.replace(old, new)
    return orjson.loads(text)


async def send(client: httpx.AsyncClient, probe: Probe) -> httpx.Response:
    kwargs: dict[str, Any] = {"params": probe.params}
    if probe.json is not None:
        kwargs["json"] = probe.json
    return await client.request(probe.method, probe.url, **kwargs)


async def test_every_route_keeps_tenants_apart(api: Api) -> None:
    world = await build_world(api)
    table = cases(world)
    routes = app_routes(api.app)
    assert not routes - set(table), (
        f"routes the tenancy walker does not cover: {routes - set(table)}"
    )
    assert not set(table) - routes, f"the walker covers routes that are gone: {set(table) - routes}"

    failures: list[str] = []
    async with api.client(api.tenant_key) as acme:
        for (method, path), probes in sorted(table.items()):
            for probe in probes:
                where = f"{method} {path}: {probe.method} {probe.url} {probe.params or ''}"
                response = await send(acme, probe)
                if response.status_code != probe.expect:
                    failures.append(f"{where} → {response.status_code}, not {probe.expect}")
                    continue
                if path in PUBLIC:
                    continue
                leaked = [m for m in world.markers() if m in response.text]
                if response.is_success and leaked:
                    failures.append(f"{where} → its answer mentions {leaked}")
                twin = replace(
                    probe,
                    url=swap(probe.url, world.twins),
                    json=swap(probe.json, world.twins),
                    params=swap(probe.params, world.twins),
                )
                if twin == probe:
                    continue
                other = await send(acme, twin)
                back = {new: old for old, new in world.twins.items()}
                seen = (response.status_code, _body(response))
                unseen = (other.status_code, swap(_body(other), back))
                if seen != unseen:
                    failures.append(f"{where} → differs for a foreign id: {seen} vs {unseen}")
    assert not failures, "\n".join(failures)
    await assert_untouched(api, world)


def _body(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/"):
        return response.json()
    return response.text


async def assert_untouched(api: Api, w: World) -> None:
    async with api.client() as admin:
        endpoint = (await admin.get(f"/v1/endpoints/{w.endpoint_id}")).json()
        assert (endpoint["name"], endpoint["status"]) == ("g", "active")
        delivery = (await admin.get(f"/v1/deliveries/{w.delivery_id}")).json()
        assert delivery["status"] == "dead"
        assert delivery["attempts"] == 1
        event_type = (
            await admin.get(f"/v1/event-types/{FOREIGN_TYPE}", params={"tenant_id": FOREIGN})
        ).json()
        assert (event_type["description"], event_type["archived"]) == ("globex's", False)
        keys = (await admin.get("/v1/keys", params={"tenant_id": FOREIGN})).json()["data"]
        assert [(k["id"], k["revoked_at"]) for k in keys] == [(w.key_id, None)]
        events = (await admin.get("/v1/events", params={"tenant_id": FOREIGN})).json()["data"]
        assert [e["id"] for e in events] == [w.event_id]
        endpoints = (await admin.get("/v1/endpoints", params={"tenant_id": FOREIGN})).json()
        assert [e["id"] for e in endpoints["data"]] == [w.endpoint_id]
        # and acme could still use its own things all along
        async with api.client(api.tenant_key) as acme:
            own = await acme.get(f"/v1/endpoints/{w.own_endpoint_id}")
            assert own.status_code == 200


async def test_the_walker_catches_a_leak(api: Api) -> None:
    """The walk above can fail: the same probes against an app whose tenant scoping is
    broken (every key acts as an admin) report the routes that leak."""
    world = await build_world(api)
    table = cases(world)
    original = api.engine.authenticate

    async def as_admin(key: str) -> Any:
        record = await original(key)
        return replace(record, tenant_id=None)

    api.engine.authenticate = as_admin  # type: ignore[method-assign]
    async with api.client(api.tenant_key) as acme:
        response = await send(acme, table[("GET", "/v1/endpoints/{endpoint_id}")][0])
        assert response.status_code == 200
        listed = await send(acme, table[("GET", "/v1/endpoints")][0])
        assert world.endpoint_id in listed.text
