"""API keys over HTTP: create (shown once), list (prefixes only), revoke (refused at once)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from hookd import crypto
from hookd.domain import errors
from hookd.engine import Engine
from support.api import Api, problem


async def create_key(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_admin_creates_a_tenant_key_that_sees_only_its_tenant(
    api: Api, admin: httpx.AsyncClient
) -> None:
    created = await create_key(admin, tenant_id="globex", name="ci")
    assert created["tenant_id"] == "globex"
    assert created["name"] == "ci"
    assert created["id"].startswith("key_")
    assert created["key"].startswith("hk_")
    assert created["prefix"] == created["key"][:10]
    assert created["revoked_at"] is None
    assert created["created_at"].endswith("Z")

    await admin.post(
        "/v1/endpoints",
        json={"url": "https://example.com/a", "event_types": ["*"], "tenant_id": "globex"},
    )
    await admin.post("/v1/endpoints", json={"url": "https://example.com/b", "event_types": ["*"]})
    async with api.client(created["key"]) as globex:
        listed = (await globex.get("/v1/endpoints")).json()["data"]
        assert [e["url"] for e in listed] == ["https://example.com/a"]
        assert listed[0]["tenant_id"] == "globex"
        # what it creates lands in its tenant
        made = await globex.post(
            "/v1/endpoints", json={"url": "https://example.com/c", "event_types": ["*"]}
        )
        assert made.json()["tenant_id"] == "globex"


async def test_admin_key_defaults_and_admin_keys(api: Api, admin: httpx.AsyncClient) -> None:
    assert (await create_key(admin))["tenant_id"] == "default"
    made = await create_key(admin, tenant_id=None, name="second admin")
    assert made["tenant_id"] is None
    async with api.client(made["key"]) as second:
        assert (await second.post("/v1/keys", json={"tenant_id": None})).status_code == 201


async def test_a_key_is_shown_once_and_never_its_hash(
    admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    created = await create_key(admin, tenant_id="acme")
    for client in (admin, acme):
        response = await client.get("/v1/keys")
        assert response.status_code == 200
        assert created["key"] not in response.text
        assert crypto.hash_api_key(created["key"]) not in response.text
        assert "hash" not in response.text
        shown = {k["id"]: k for k in response.json()["data"]}
        assert shown[created["id"]] == {k: v for k, v in created.items() if k != "key"}


async def test_listing_keys_by_tenant(
    api: Api, admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    await create_key(admin, tenant_id="globex")
    await create_key(admin, tenant_id="acme")
    everyone = (await admin.get("/v1/keys")).json()["data"]
    assert {k["tenant_id"] for k in everyone} == {None, "acme", "globex"}
    ids = [k["id"] for k in everyone]
    assert ids == sorted(ids, reverse=True)  # newest first
    only_acme = (await admin.get("/v1/keys", params={"tenant_id": "acme"})).json()["data"]
    assert {k["tenant_id"] for k in only_acme} == {"acme"}
    assert len(only_acme) == 2  # the fixture's and this one
    mine = (await acme.get("/v1/keys")).json()["data"]
    assert {k["id"] for k in mine} == {k["id"] for k in only_acme}
    assert (await acme.get("/v1/keys", params={"tenant_id": "acme"})).status_code == 200
    page = (await admin.get("/v1/keys", params={"limit": 2})).json()
    rest = (await admin.get("/v1/keys", params={"cursor": page["next_cursor"]})).json()
    assert [k["id"] for k in page["data"] + rest["data"]] == ids
    assert rest["next_cursor"] is None


async def test_tenant_keys_create_keys_for_their_own_tenant_only(
    acme: httpx.AsyncClient,
) -> None:
    assert (await create_key(acme))["tenant_id"] == "acme"
    assert (await create_key(acme, tenant_id="acme", name="x"))["tenant_id"] == "acme"
    # another tenant: not found, as for any of its resources (existing or not)
    for other in ("globex", "default", "never-heard-of"):
        body = problem(await acme.post("/v1/keys", json={"tenant_id": other}), 404)
        assert other in body["detail"]
    # an admin key: forbidden
    body = problem(await acme.post("/v1/keys", json={"tenant_id": None}), 403)
    assert body["type"] == "https://hookd.dev/problems/forbidden"
    problem(await acme.get("/v1/keys", params={"tenant_id": "default"}), 404)


async def test_revoking_a_key_refuses_it_at_once(api: Api, admin: httpx.AsyncClient) -> None:
    created = await create_key(admin, tenant_id="acme")
    async with api.client(created["key"]) as doomed:
        assert (await doomed.get("/v1/endpoints")).status_code == 200
        response = await admin.delete(f"/v1/keys/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        problem(await doomed.get("/v1/endpoints"), 401)
        problem(await doomed.post("/v1/keys", json={}), 401)
    listed = {k["id"]: k for k in (await admin.get("/v1/keys")).json()["data"]}
    revoked_at = listed[created["id"]]["revoked_at"]
    assert revoked_at is not None
    # revoking again changes nothing
    assert (await admin.delete(f"/v1/keys/{created['id']}")).status_code == 204
    listed = {k["id"]: k for k in (await admin.get("/v1/keys")).json()["data"]}
    assert listed[created["id"]]["revoked_at"] == revoked_at
    problem(await admin.delete("/v1/keys/key_missing"), 404)


async def test_a_tenant_key_revokes_its_tenants_keys_only(
    api: Api, admin: httpx.AsyncClient, acme: httpx.AsyncClient
) -> None:
    foreign = await create_key(admin, tenant_id="globex")
    own = await create_key(acme)
    admins = [k for k in (await admin.get("/v1/keys")).json()["data"] if k["tenant_id"] is None]
    problem(await acme.delete(f"/v1/keys/{foreign['id']}"), 404)
    problem(await acme.delete(f"/v1/keys/{admins[0]['id']}"), 404)
    assert (await acme.delete(f"/v1/keys/{own['id']}")).status_code == 204
    async with api.client(foreign["key"]) as globex:
        assert (await globex.get("/v1/keys")).status_code == 200  # untouched


async def test_the_last_admin_key_cannot_be_revoked(api: Api, admin: httpx.AsyncClient) -> None:
    admins = [k for k in (await admin.get("/v1/keys")).json()["data"] if k["tenant_id"] is None]
    assert len(admins) == 1
    body = problem(await admin.delete(f"/v1/keys/{admins[0]['id']}"), 409)
    assert "last active admin key" in body["detail"]
    second = await create_key(admin, tenant_id=None)
    assert (await admin.delete(f"/v1/keys/{admins[0]['id']}")).status_code == 204
    problem(await admin.get("/v1/keys"), 401)
    async with api.client(second["key"]) as still:
        problem(await still.delete(f"/v1/keys/{second['id']}"), 409)


async def test_key_requests_are_checked(admin: httpx.AsyncClient) -> None:
    body = problem(await admin.post("/v1/keys", json={"tenant_id": "Not Valid!"}), 422)
    assert [e["path"] for e in body["errors"]] == ["tenant_id"]
    body = problem(await admin.post("/v1/keys", json={"name": "x" * 1025, "scope": "all"}), 422)
    assert [e["path"] for e in body["errors"]] == ["scope"]
    body = problem(await admin.post("/v1/keys", json={"name": "x" * 1025}), 422)
    assert [e["path"] for e in body["errors"]] == ["name"]
    body = problem(await admin.get("/v1/keys", params={"tenant_id": "UPPER"}), 422)
    assert [e["path"] for e in body["errors"]] == ["tenant_id"]


async def test_valid_keys_are_cached_briefly_and_revocation_here_clears_them(
    engine: Engine,
) -> None:
    """A key revoked through this engine is refused at once; revoked behind its back (another
    process on PostgreSQL), within KEY_CACHE_SECONDS."""
    record, key = await engine.create_api_key("acme")
    other, other_key = await engine.create_api_key("acme")
    assert await engine.authenticate(key) == record
    assert await engine.authenticate(other_key) == other
    await engine.store.revoke_api_key("acme", other.id, now=time.time())  # "another process"
    assert await engine.authenticate(other_key) == other  # still cached
    await engine.revoke_api_key("acme", record.id)
    for revoked in (key, other_key):  # the revocation here forgot every cached key
        with pytest.raises(errors.Unauthorized):
            await engine.authenticate(revoked)
    with pytest.raises(errors.Unauthorized):
        await engine.authenticate("hk_not_a_key")
