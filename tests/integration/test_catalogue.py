"""The shipped catalogue (examples/event-types.json) through the real CLI and a real server:
import it, publish every example, and see a broken payload refused with every violation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from hookd import client
from hookd.api import create_app
from hookd.cli import app as cli
from hookd.config import Settings
from hookd.domain.models import Secret
from hookd.engine import Engine
from support.server import free_port

CATALOGUE = Path(__file__).resolve().parents[2] / "examples" / "event-types.json"
ADMIN_KEY = "hk_catalogue_admin_key_0123456789abcdefgh"
NAMES = [
    "token_transfer",
    "price_change",
    "security_alert",
    "order.filled",
    "order.canceled",
    "balance.updated",
    "pool.assets_locked",
]
#: A payload per type that breaks its schema, and the violations expected (paths).
BROKEN: dict[str, tuple[dict[str, Any], list[str]]] = {
    "token_transfer": (
        {"event_type": "token_transfer", "amount": 5},
        ["payload"] * 4 + ["payload/amount"],  # chain, token and addresses missing; not a string
    ),
    "price_change": (
        {"event_type": "price_change", "token_address": "0x1", "old_price": -1, "new_price": 2},
        ["payload", "payload/old_price"],
    ),
    "security_alert": (
        {
            "event_type": "security_alert",
            "alert_type": "phishing",
            "token_address": "0x1",
            "severity": "apocalyptic",
            "description": "x",
            "risk_score": 101,
        },
        ["payload/alert_type", "payload/risk_score", "payload/severity"],
    ),
    "order.filled": (
        {"orderId": "1", "symbol": "BTCUSDT", "side": "hold", "amount": 0, "price": 1},
        ["payload", "payload/amount", "payload/side"],
    ),
    "order.canceled": ({"orderId": "1", "symbol": "X", "exchange": 3}, ["payload/exchange"]),
    "balance.updated": (
        {"totalUSDValue": 1, "assets": [{"currency": "BTC"}]},
        ["payload/assets/0"],
    ),
    "pool.assets_locked": (
        {"pool_id": "p", "locked_until": "2030-01-01T00:00:00Z", "assets": [{"amount": "1e5"}]},
        ["payload/assets/0", "payload/assets/0/amount"],
    ),
}


class Server:
    """A real uvicorn server over a real engine, in a thread."""

    def __init__(self, settings: Settings) -> None:
        engine = Engine(settings, run_worker=False)

        async def startup(opened: Engine) -> None:
            await opened.bootstrap_admin_key()

        self.port = free_port()
        config = uvicorn.Config(
            create_app(engine, on_startup=startup),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Server]:
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HOOKD_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    with Server(settings.replace(api_key=Secret(ADMIN_KEY))) as running:
        yield running


def hookd(server: Server, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--url", server.url, "--api-key", ADMIN_KEY])


def test_the_catalogue_imports_and_every_example_publishes(server: Server) -> None:
    imported = hookd(server, "event-types", "import", str(CATALOGUE))
    assert imported.exit_code == 0, imported.output
    for name in NAMES:
        assert f"created   {name}" in imported.stdout
    assert "Imported 7 event types: 7 created, 0 updated, 0 unchanged, 0 failed" in imported.stdout

    api = client.Client(server.url, ADMIN_KEY)
    entries = json.loads(CATALOGUE.read_text())
    assert [e["name"] for e in entries] == NAMES
    for entry in entries:
        assert entry["description"] and entry["schema"] and entry["example"]
        accepted = api.post("/v1/events", json={"type": entry["name"], "payload": entry["example"]})
        assert accepted["type"] == entry["name"] and not accepted["duplicate"]

    for name, (payload, paths) in BROKEN.items():
        with pytest.raises(client.ApiError) as refused:
            api.post("/v1/events", json={"type": name, "payload": payload})
        assert refused.value.status == 422, name
        assert sorted(p.path for p in refused.value.errors) == paths, (name, refused.value.errors)
    assert len(api.get("/v1/events", params={"limit": 100})["data"]) == len(NAMES)


def test_import_is_an_upsert(server: Server, tmp_path: Path) -> None:
    assert hookd(server, "event-types", "import", str(CATALOGUE)).exit_code == 0
    again = hookd(server, "event-types", "import", str(CATALOGUE))
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 7 unchanged, 0 failed" in again.stdout

    entries = json.loads(CATALOGUE.read_text())
    entries[3]["description"] = "changed"
    entries.append({"name": "order.rejected", "description": "new"})
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({"event_types": entries}))
    result = hookd(server, "event-types", "import", str(changed), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["created"] == ["order.rejected"]
    assert outcome["updated"] == ["order.filled"]
    assert len(outcome["unchanged"]) == 6
    shown = hookd(server, "event-types", "show", "order.filled", "--json")
    assert json.loads(shown.stdout)["description"] == "changed"


def test_import_reports_entries_the_server_refuses(server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"name": "good.one"},
                {"name": "bad.one", "schema": {"type": "strng"}, "example": {}},
            ]
        )
    )
    result = hookd(server, "event-types", "import", str(bad))
    assert result.exit_code == 1
    assert "created   good.one" in result.stdout
    assert "bad.one" in result.stderr
    assert "schema/type" in result.stderr


def test_import_checks_the_file_first(server: Server, tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "notjson.json": "{",
        "object.json": '{"x": 1}',
        "noname.json": '[{"description": "x"}]',
        "unknown.json": '[{"name": "a", "colour": "red"}]',
        "twice.json": '[{"name": "a"}, {"name": "a"}]',
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        result = hookd(server, "event-types", "import", str(path))
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.startswith("error: "), name
    listed = hookd(server, "event-types", "list", "--json")
    assert json.loads(listed.stdout)["data"] == []


def test_list_and_show(server: Server) -> None:
    assert hookd(server, "event-types", "import", str(CATALOGUE)).exit_code == 0
    listed = hookd(server, "event-types", "list")
    assert listed.exit_code == 0, listed.output
    for name in NAMES:
        assert name in listed.stdout
    shown = hookd(server, "event-types", "show", "security_alert")
    assert shown.exit_code == 0, shown.output
    assert "rug_pull" in shown.stdout and "risk_score" in shown.stdout
    missing = hookd(server, "event-types", "show", "nope")
    assert missing.exit_code == 1
    assert "not found" in missing.stderr
