"""``hookd keys …`` against the stub server of test_cli: what each command sends and prints."""

from __future__ import annotations

from typing import Any

from test_cli import Stub, remote
from test_cli import environment as environment  # the fixtures, re-exported
from test_cli import stub as stub

KEY_RECORD: dict[str, Any] = {
    "id": "key_01HZY0000000000000000000AB",
    "prefix": "hk_AbCdEfG",
    "tenant_id": "acme",
    "name": "ci",
    "created_at": "2024-05-01T12:00:00.000Z",
    "revoked_at": None,
}
SECRET_KEY = "hk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"


def test_create_a_tenant_key(stub: Stub) -> None:
    stub.reply("POST", "/v1/keys", 201, {**KEY_RECORD, "key": SECRET_KEY})

    result = remote(stub, "keys", "create", "--tenant", "acme", "--name", "ci")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {"tenant_id": "acme", "name": "ci"}
    assert "Created API key key_01HZY0000000000000000000AB" in result.stdout
    assert SECRET_KEY in result.stdout
    assert "shown once" in result.stdout


def test_create_an_admin_key_or_one_for_the_callers_tenant(stub: Stub) -> None:
    stub.reply("POST", "/v1/keys", 201, {**KEY_RECORD, "tenant_id": None, "key": SECRET_KEY})

    admin = remote(stub, "keys", "create", "--admin")
    plain = remote(stub, "keys", "create", "--json")

    assert admin.exit_code == 0, admin.output
    assert "admin (every tenant)" in admin.stdout
    assert [s.json() for s in stub.seen] == [{"tenant_id": None}, {}]
    assert plain.exit_code == 0
    assert '"key": "' + SECRET_KEY in plain.stdout


def test_admin_and_tenant_exclude_each_other(stub: Stub) -> None:
    result = remote(stub, "keys", "create", "--admin", "--tenant", "acme")

    assert result.exit_code == 2
    assert "exclude each other" in result.stderr
    assert stub.seen == []


def test_list_shows_prefixes_and_status(stub: Stub) -> None:
    revoked = {
        **KEY_RECORD,
        "id": "key_2",
        "tenant_id": None,
        "revoked_at": KEY_RECORD["created_at"],
    }
    stub.reply("GET", "/v1/keys", 200, {"data": [KEY_RECORD, revoked], "next_cursor": None})

    result = remote(stub, "keys", "list", "--tenant", "acme")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].path.startswith("/v1/keys?tenant_id=acme")
    assert "hk_AbCdEfG…" in result.stdout
    assert "active" in result.stdout
    assert "revoked" in result.stdout
    assert "admin" in result.stdout


def test_revoke_asks_first(stub: Stub) -> None:
    stub.reply("DELETE", "/v1/keys/key_1", 204)

    declined = remote(stub, "keys", "revoke", "key_1", input="n\n")
    confirmed = remote(stub, "keys", "revoke", "key_1", "--yes")

    assert declined.exit_code == 1
    assert confirmed.exit_code == 0, confirmed.output
    assert [(s.method, s.path) for s in stub.seen] == [("DELETE", "/v1/keys/key_1")]
    assert "Revoked API key key_1" in confirmed.stdout


def test_a_refusal_is_reported(stub: Stub) -> None:
    stub.reply(
        "POST",
        "/v1/keys",
        403,
        {"title": "Forbidden", "status": 403, "detail": "a tenant key cannot create admin keys"},
    )

    result = remote(stub, "keys", "create", "--admin")

    assert result.exit_code == 1
    assert "a tenant key cannot create admin keys" in result.stderr
