"""The ``hookd`` command: parsing, what it sends, what it prints, and how it fails.

Client commands run against a stub HTTP server (http.server in a thread) that answers canned
replies and records each request; end-to-end runs against a real ``hookd serve`` live elsewhere.
"""

from __future__ import annotations

import fcntl
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from hookd import __version__, credentials
from hookd.cli import app
from hookd.store.sql import load_migrations

KEY = "hk_saved_for_the_stub_server_0123456789abcd"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

ENDPOINT: dict[str, Any] = {
    "id": "ep_01HZY0000000000000000000AB",
    "url": "https://example.com/hook",
    "name": "orders",
    "description": None,
    "event_types": ["order.*", "user.created"],
    "headers": {"X-Team": "[redacted]"},
    "timeout": 15.0,
    "retry_policy": {"kind": "schedule", "delays": [0, 5, 300], "jitter": 0.2},
    "status": "active",
    "status_reason": None,
    "metadata": {},
    "secret_preview": "whsec_MfKQ…aSw",
    "created_at": "2024-05-01T12:00:00Z",
    "updated_at": "2024-05-01T12:00:00Z",
}
DELIVERY: dict[str, Any] = {
    "id": "dlv_01HZY0000000000000000000CD",
    "event_id": "evt_01HZY0000000000000000000EF",
    "endpoint_id": ENDPOINT["id"],
    "event_type": "order.filled",
    "status": "dead",
    "attempts": 3,
    "total_attempts": 3,
    "next_attempt_at": None,
    "last_status_code": 503,
    "last_error": None,
    "created_at": "2024-05-01T12:00:00Z",
    "updated_at": "2024-05-01T12:05:00Z",
}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Stub:
    """A local HTTP server answering canned JSON by (method, path), recording every request."""

    url: str = ""
    replies: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def reply(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.replies[(method, path)] = (status, body)


def _handler(stub: Stub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            stub.seen.append(Seen(self.command, self.path, headers, body))
            default = (404, {"title": "Not found", "status": 404, "detail": "no such route"})
            status, data = stub.replies.get((self.command, self.path.split("?")[0]), default)
            raw = b"" if data is None else orjson.dumps(data)
            self.send_response(status)
            kind = "application/problem+json" if status >= 400 else "application/json"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = do_DELETE = handle_one

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray configuration from the machine: a private config dir, no key, no URL."""
    for name in ("HOOKD_API_KEY", "HOOKD_URL", "HOOKD_DB", "HOOKD_HOST", "HOOKD_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "200")


def hookd(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def remote(stub: Stub, *args: str, input: str | None = None) -> Result:
    """Run a client command against the stub, with the key saved for it."""
    credentials.save(stub.url, KEY)
    return hookd(*args, "--url", stub.url, input=input)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_usage_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


# top level ---------------------------------------------------------------------------------------
def test_version() -> None:
    result = hookd("--version")

    assert result.exit_code == 0
    assert result.stdout.strip() == f"hookd {__version__}"


def test_help_lists_the_commands() -> None:
    result = hookd("--help")

    assert result.exit_code == 0
    for command in ("serve", "api", "migrate", "listen", "send", "endpoints", "deliveries", "dlq"):
        assert command in result.stdout


def test_unreachable_server_is_a_friendly_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = hookd("endpoints", "list", "--url", url)

    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: cannot reach hookd at {url}: is `hookd serve` running?"
    assert result.stdout == ""


def test_a_bad_url_is_a_usage_error() -> None:
    assert_usage_error(hookd("endpoints", "list", "--url", "ftp://x"), "not an http(s) server URL")


def test_url_comes_from_hookd_url(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.reply("GET", "/v1/endpoints", 200, {"data": [], "next_cursor": None})
    monkeypatch.setenv("HOOKD_URL", stub.url)

    result = hookd("endpoints", "list")

    assert result.exit_code == 0, result.output
    assert len(stub.seen) == 1


# API keys ----------------------------------------------------------------------------------------
def test_the_saved_key_is_used(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints", 200, {"data": [], "next_cursor": None})

    result = remote(stub, "endpoints", "list")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_key_saved_for_0_0_0_0_serves_localhost(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints", 200, {"data": [], "next_cursor": None})
    port = stub.url.rsplit(":", 1)[1]
    credentials.save(f"http://0.0.0.0:{port}", KEY)

    result = hookd("endpoints", "list", "--url", f"http://localhost:{port}")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_api_key_option_and_env_win_over_the_saved_key(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.reply("GET", "/v1/endpoints", 200, {"data": [], "next_cursor": None})

    remote(stub, "endpoints", "list", "--api-key", "hk_from_option")
    monkeypatch.setenv("HOOKD_API_KEY", "hk_from_env")
    remote(stub, "endpoints", "list")

    assert [s.headers["authorization"] for s in stub.seen] == [
        "Bearer hk_from_option",
        "Bearer hk_from_env",
    ]


def test_unauthorized_says_where_keys_come_from(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints", 401, {"title": "Unauthorized", "detail": "missing API key"})

    result = hookd("endpoints", "list", "--url", stub.url)

    assert result.exit_code == 1
    assert "error: Unauthorized: missing API key" in result.stderr
    assert "--api-key" in result.stderr
    assert "HOOKD_API_KEY" in result.stderr


# errors from the API -----------------------------------------------------------------------------
def test_validation_errors_are_listed_field_by_field(stub: Stub) -> None:
    stub.reply(
        "POST",
        "/v1/endpoints",
        422,
        {
            "title": "Validation error",
            "status": 422,
            "detail": "invalid endpoint",
            "errors": [
                {"path": "url", "message": "scheme must be http or https, not 'ftp'"},
                {"path": "event_types[0]", "message": "pattern 'a b' is malformed"},
            ],
        },
    )

    result = remote(stub, "endpoints", "add", "ftp://example.com", "--events", "a b")

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: Validation error: invalid endpoint"
    assert "  • url: scheme must be http or https, not 'ftp'" in lines
    assert "  • event_types[0]: pattern 'a b' is malformed" in lines
    assert "Traceback" not in result.output


def test_not_found(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints/ep_x", 404, {"title": "Not found", "detail": "no ep_x"})

    result = remote(stub, "endpoints", "show", "ep_x")

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: Not found: no ep_x"


# endpoints ---------------------------------------------------------------------------------------
def test_endpoints_add_sends_every_option_and_shows_the_secret_once(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints", 201, {**ENDPOINT, "secret": SECRET})

    result = remote(
        stub,
        "endpoints",
        "add",
        "https://example.com/hook",
        "--events",
        "order.*,user.created",
        "-e",
        "invoice.paid",
        "--secret",
        SECRET,
        "--header",
        "X-Team=payments",
        "-H",
        "Authorization=Basic a=b",
        "--timeout",
        "5",
        "--max-attempts",
        "4",
        "--name",
        "orders",
        "--default-priority",
        "3",
        "--fifo",
        "--fallback-url",
        "https://backup.example.com/hook",
    )

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {
        "url": "https://example.com/hook",
        "event_types": ["order.*", "user.created", "invoice.paid"],
        "secret": SECRET,
        "headers": {"X-Team": "payments", "Authorization": "Basic a=b"},
        "timeout": 5.0,
        "max_attempts": 4,
        "name": "orders",
        "default_priority": 3,
        "ordering": "fifo",
        "fallback_url": "https://backup.example.com/hook",
    }
    assert ENDPOINT["id"] in result.stdout
    assert f"Signing secret (shown once): {SECRET}" in result.stdout


def test_endpoints_add_sends_only_what_was_given(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints", 201, {**ENDPOINT, "secret": SECRET})

    result = remote(stub, "endpoints", "add", "https://example.com/hook", "-e", "*", "--json")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {"url": "https://example.com/hook", "event_types": ["*"]}
    assert orjson.loads(result.stdout)["secret"] == SECRET


def test_endpoints_add_needs_events() -> None:
    result = hookd("endpoints", "add", "https://example.com/hook")

    assert result.exit_code == 2
    assert "--events" in result.output


@pytest.mark.parametrize("header", ["no-equals-sign", "=value"])
def test_endpoints_add_refuses_a_malformed_header(header: str) -> None:
    result = hookd("endpoints", "add", "https://example.com/hook", "-e", "*", "-H", header)

    assert_usage_error(result, "--header: expected NAME=VALUE")


def test_endpoints_list_is_a_table(stub: Stub) -> None:
    paused = {**ENDPOINT, "id": "ep_01HZY0000000000000000000ZZ", "status": "paused"}
    page = {"data": [ENDPOINT, paused], "next_cursor": "abc"}
    stub.reply("GET", "/v1/endpoints", 200, page)

    result = remote(stub, "endpoints", "list", "--limit", "2")

    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["id", "url", "events", "status"]
    assert first.split() == [ENDPOINT["id"], ENDPOINT["url"], "order.*,", "user.created", "active"]
    assert second.split()[0] == paused["id"]
    assert second.split()[-1] == "paused"
    assert "--cursor abc" in result.stderr
    assert stub.seen[0].path == "/v1/endpoints?limit=2"


def test_endpoints_list_json_is_the_raw_page(stub: Stub) -> None:
    page = {"data": [ENDPOINT], "next_cursor": None}
    stub.reply("GET", "/v1/endpoints", 200, page)

    result = remote(stub, "endpoints", "list", "--json")

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == page


def test_endpoints_list_when_empty(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints", 200, {"data": [], "next_cursor": None})

    result = remote(stub, "endpoints", "list")

    assert result.exit_code == 0
    assert "no endpoints yet" in result.stdout


def test_endpoints_show(stub: Stub) -> None:
    stub.reply("GET", f"/v1/endpoints/{ENDPOINT['id']}", 200, ENDPOINT)

    result = remote(stub, "endpoints", "show", str(ENDPOINT["id"]))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert ENDPOINT["url"] in out
    assert "order.*, user.created" in out
    assert "schedule: 0 s, 5 s, 5 min (3 attempts)" in out
    assert "X-Team" in out
    assert "whsec_MfKQ…aSw" in out


def test_endpoints_show_escapes_the_id(stub: Stub) -> None:
    remote(stub, "endpoints", "show", "../deliveries")

    assert stub.seen[0].path == "/v1/endpoints/..%2Fdeliveries"


def test_endpoints_rm_asks_first(stub: Stub) -> None:
    stub.reply("DELETE", "/v1/endpoints/ep_1", 204)

    declined = remote(stub, "endpoints", "rm", "ep_1", input="n\n")
    assert declined.exit_code == 1
    assert stub.seen == []

    confirmed = remote(stub, "endpoints", "rm", "ep_1", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert [(s.method, s.path) for s in stub.seen] == [("DELETE", "/v1/endpoints/ep_1")]


def test_endpoints_rm_yes(stub: Stub) -> None:
    stub.reply("DELETE", "/v1/endpoints/ep_1", 204)

    result = remote(stub, "endpoints", "rm", "ep_1", "--yes")

    assert result.exit_code == 0, result.output
    assert "Deleted endpoint ep_1" in result.stdout


@pytest.mark.parametrize(("command", "status"), [("pause", "paused"), ("resume", "active")])
def test_endpoints_pause_and_resume(stub: Stub, command: str, status: str) -> None:
    path = f"/v1/endpoints/ep_1/{command}"
    stub.reply("POST", path, 200, {**ENDPOINT, "id": "ep_1", "status": status})

    result = remote(stub, "endpoints", command, "ep_1")

    assert result.exit_code == 0, result.output
    assert (stub.seen[0].method, stub.seen[0].path, stub.seen[0].body) == ("POST", path, b"")
    assert status in result.stdout


ROTATED = {"secret": SECRET, "expires_at": "2024-05-02T12:00:00Z"}


@pytest.mark.parametrize(
    ("args", "body"),
    [
        ([], {"grace_period": 86400.0}),
        (["--grace", "90m"], {"grace_period": 5400.0}),
        (["--grace", "0", "--secret", SECRET], {"grace_period": 0.0, "secret": SECRET}),
        (["--grace", "7d"], {"grace_period": 604800.0}),
    ],
)
def test_endpoints_rotate_secret(stub: Stub, args: list[str], body: dict[str, Any]) -> None:
    stub.reply("POST", "/v1/endpoints/ep_1/secret/rotate", 200, ROTATED)

    result = remote(stub, "endpoints", "rotate-secret", "ep_1", *args)

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == body
    assert SECRET in result.stdout
    assert "shown once" in result.stdout


@pytest.mark.parametrize("grace", ["soon", "-1h", "nan", "1y"])
def test_endpoints_rotate_secret_refuses_a_bad_grace(grace: str) -> None:
    assert_usage_error(hookd("endpoints", "rotate-secret", "ep_1", "--grace", grace), "--grace")


TESTED = {
    "message_id": "test_01HZY0000000000000000000AA",
    "event_type": "hookd.test",
    "url": "https://example.com/hook",
    "started_at": "2024-05-01T12:00:00Z",
    "duration_ms": 12.5,
    "outcome": "success",
    "status_code": 204,
    "error": None,
    "request_headers": {},
    "response_headers": {},
    "response_body": None,
}


def test_endpoints_test(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints/ep_1/test", 200, TESTED)

    result = remote(stub, "endpoints", "test", "ep_1", "--type", "order.filled", "-d", '{"a": 1}')

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {"event_type": "order.filled", "payload": {"a": 1}}
    assert "delivered" in result.stdout
    assert "204" in result.stdout
    assert TESTED["message_id"] in result.stdout


def test_endpoints_test_failure_exits_non_zero(stub: Stub) -> None:
    failed = {**TESTED, "outcome": "retry", "status_code": None, "error": "connection: refused"}
    stub.reply("POST", "/v1/endpoints/ep_1/test", 200, failed)

    result = remote(stub, "endpoints", "test", "ep_1")

    assert result.exit_code == 1
    assert stub.seen[0].json() == {"event_type": "hookd.test"}
    assert "failed" in result.stderr
    assert "connection: refused" in result.stdout


STATS: dict[str, Any] = {
    "window": 86400.0,
    "since": "2024-05-01T12:00:00Z",
    "until": "2024-05-02T12:00:00Z",
    "total": 10,
    "deliveries": {
        "pending": 1,
        "sending": 0,
        "delivered": 8,
        "failed": 1,
        "dead": 0,
        "parked": 0,
    },
    "success_rate": 8 / 9,
    "latency": {
        "attempts": 12,
        "mean_ms": 40.0,
        "p50_ms": 31.0,
        "p95_ms": 80.5,
        "p99_ms": 99.0,
        "sampled": 12,
    },
    "by_event_type": [
        {"event_type": "order.filled", "total": 10, "deliveries": {}, "success_rate": 8 / 9}
    ],
}


def test_endpoints_stats(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints/ep_1/stats", 200, {**STATS, "endpoint_id": "ep_1"})

    result = remote(stub, "endpoints", "stats", "ep_1", "--window", "7d")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].path == "/v1/endpoints/ep_1/stats?window=7d"
    assert "88.9%" in result.stdout
    assert "p95 80.5 ms" in result.stdout
    assert re.search(r"^  delivered +8 *$", result.stdout, re.MULTILINE)


def test_stats(stub: Stub) -> None:
    row = {"delivered": 8, "failed": 1, "dead": 0}
    stub.reply(
        "GET",
        "/v1/stats",
        200,
        {
            **STATS,
            "by_event_type": [
                {"event_type": "order.filled", "total": 10, "deliveries": row, "success_rate": 0.5}
            ],
            "by_endpoint": [
                {"endpoint_id": "ep_1", "total": 10, "deliveries": row, "success_rate": None}
            ],
        },
    )

    result = remote(stub, "stats", "--top", "3")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].path == "/v1/stats?window=24h&top=3"
    assert "order.filled" in result.stdout
    assert "ep_1" in result.stdout
    assert "50.0%" in result.stdout


# send --------------------------------------------------------------------------------------------
PUBLISHED = {"id": "evt_1", "type": "order.filled", "deliveries": 2, "duplicate": False}


def test_send_inline_json(stub: Stub) -> None:
    stub.reply("POST", "/v1/events", 202, PUBLISHED)

    result = remote(
        stub,
        "send",
        "order.filled",
        "--data",
        '{"qty": 3}',
        "--idempotency-key",
        "k-1",
        "--priority",
        "-4",
    )

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {
        "type": "order.filled",
        "payload": {"qty": 3},
        "idempotency_key": "k-1",
        "priority": -4,
    }
    assert "Published evt_1 (order.filled) to 2 endpoints" in result.stdout


def test_send_without_data_sends_an_empty_object(stub: Stub) -> None:
    stub.reply("POST", "/v1/events", 202, {**PUBLISHED, "deliveries": 1})

    result = remote(stub, "send", "order.filled")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {"type": "order.filled", "payload": {}}
    assert "to 1 endpoint" in result.stdout


def test_send_says_when_nobody_listens(stub: Stub) -> None:
    stub.reply("POST", "/v1/events", 202, {**PUBLISHED, "deliveries": 0})

    result = remote(stub, "send", "order.filled")

    assert result.exit_code == 0, result.output
    assert "to 0 endpoints" in result.stdout
    assert "no endpoint is subscribed to order.filled" in result.stderr


def test_send_data_from_a_file_and_from_stdin(stub: Stub, tmp_path: Path) -> None:
    stub.reply("POST", "/v1/events", 202, PUBLISHED)
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "file"}')

    from_file = remote(stub, "send", "order.filled", "--data", f"@{payload}")
    from_stdin = remote(stub, "send", "order.filled", "-d", "@-", input='{"from": "stdin"}')

    assert from_file.exit_code == 0, from_file.output
    assert from_stdin.exit_code == 0, from_stdin.output
    assert [s.json()["payload"] for s in stub.seen] == [{"from": "file"}, {"from": "stdin"}]


def test_send_a_duplicate(stub: Stub) -> None:
    stub.reply("POST", "/v1/events", 200, {**PUBLISHED, "duplicate": True})

    result = remote(stub, "send", "order.filled", "--idempotency-key", "k-1")

    assert result.exit_code == 0, result.output
    assert "Already published as evt_1" in result.stdout


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{bad", "--data: not valid JSON"),
        ("[1, 2]", "--data: must be a JSON object, not an array"),
        ('"text"', "--data: must be a JSON object, not a string"),
        ("@/no/such/file.json", "--data: cannot read /no/such/file.json"),
    ],
)
def test_send_refuses_bad_data_before_calling_the_server(data: str, message: str) -> None:
    # no server runs at the default URL: a usage error must come before any request
    assert_usage_error(hookd("send", "order.filled", "--data", data), message)


def test_send_bad_json_in_a_file_names_the_file(tmp_path: Path) -> None:
    payload = tmp_path / "broken.json"
    payload.write_text("{oops")

    assert_usage_error(
        hookd("send", "order.filled", "--data", f"@{payload}"), f"not valid JSON in {payload}"
    )


# deliveries --------------------------------------------------------------------------------------
def test_deliveries_list_filters(stub: Stub) -> None:
    stub.reply("GET", "/v1/deliveries", 200, {"data": [DELIVERY], "next_cursor": None})

    result = remote(
        stub,
        "deliveries",
        "list",
        "--status",
        "failed",
        "--status",
        "dead",
        "--endpoint",
        "ep_1",
        "--event",
        "evt_1",
        "--limit",
        "10",
    )

    assert result.exit_code == 0, result.output
    assert stub.seen[0].path == (
        "/v1/deliveries?status=failed&status=dead&endpoint_id=ep_1&event_id=evt_1&limit=10"
    )
    header, row = result.stdout.splitlines()
    assert header.split() == ["id", "type", "status", "tries", "last", "created"]
    assert row.split()[:5] == [DELIVERY["id"], "order.filled", "dead", "3", "503"]


def test_deliveries_list_refuses_an_unknown_status() -> None:
    result = hookd("deliveries", "list", "--status", "lost")

    assert result.exit_code == 2
    assert "lost" in result.output


def test_deliveries_show_with_attempts(stub: Stub) -> None:
    attempts = [
        {
            "id": "att_1",
            "number": 1,
            "started_at": "2024-05-01T12:00:00Z",
            "duration_ms": 12.4,
            "outcome": "retry",
            "status_code": 503,
            "error": None,
        },
        {
            "id": "att_2",
            "number": 2,
            "started_at": "2024-05-01T12:00:05Z",
            "duration_ms": 5000.0,
            "outcome": "retry",
            "status_code": None,
            "error": "timeout: no response in 5.0s",
        },
    ]
    stub.reply(
        "GET", f"/v1/deliveries/{DELIVERY['id']}", 200, {**DELIVERY, "attempt_log": attempts}
    )

    result = remote(stub, "deliveries", "show", str(DELIVERY["id"]))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "evt_01HZY0000000000000000000EF (order.filled)" in out
    assert "timeout: no response in 5.0s" in out
    assert "12 ms" in out
    assert "5000 ms" in out


def test_deliveries_retry(stub: Stub) -> None:
    stub.reply("POST", "/v1/deliveries/dlv_1/retry", 202, {**DELIVERY, "id": "dlv_1"})

    result = remote(stub, "deliveries", "retry", "dlv_1")

    assert result.exit_code == 0, result.output
    assert "Retrying delivery dlv_1" in result.stdout


def test_deliveries_retry_conflict(stub: Stub) -> None:
    stub.reply(
        "POST", "/v1/deliveries/dlv_1/retry", 409, {"title": "Conflict", "detail": "being sent"}
    )

    result = remote(stub, "deliveries", "retry", "dlv_1")

    assert result.exit_code == 1
    assert "error: Conflict: being sent" in result.stderr


# dead letters ------------------------------------------------------------------------------------
def test_dlq_list(stub: Stub) -> None:
    stub.reply("GET", "/v1/dead-letters", 200, {"data": [DELIVERY], "next_cursor": None})

    result = remote(stub, "dlq", "list", "--endpoint", "ep_1")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].path == "/v1/dead-letters?endpoint_id=ep_1&limit=50"
    assert DELIVERY["id"] in result.stdout


def test_dlq_replay_refuses_to_replay_everything_unasked() -> None:
    assert_usage_error(hookd("dlq", "replay"), "--all")


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["dlv_1", "dlv_2"], {"delivery_ids": ["dlv_1", "dlv_2"]}),
        (["--endpoint", "ep_1"], {"endpoint_id": "ep_1"}),
        (["--all"], {}),
    ],
)
def test_dlq_replay(stub: Stub, args: list[str], body: dict[str, Any]) -> None:
    stub.reply("POST", "/v1/dead-letters/replay", 202, {"replayed": 2})

    result = remote(stub, "dlq", "replay", *args)

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == body
    assert "Replayed 2 dead letters" in result.stdout


def test_dlq_purge(stub: Stub) -> None:
    stub.reply("DELETE", "/v1/dead-letters", 200, {"purged": 1})

    result = remote(stub, "dlq", "purge", "--older-than", "7d", "--endpoint", "ep_1", "--yes")

    assert result.exit_code == 0, result.output
    assert (stub.seen[0].method, stub.seen[0].path) == (
        "DELETE",
        "/v1/dead-letters?older_than=7d&endpoint_id=ep_1",
    )
    assert "Purged 1 dead letter" in result.stdout


def test_dlq_purge_asks_first(stub: Stub) -> None:
    result = remote(stub, "dlq", "purge", "--older-than", "30d", input="n\n")

    assert result.exit_code == 1
    assert stub.seen == []


@pytest.mark.parametrize("age", ["7x", "seven days", "-1d", ""])
def test_dlq_purge_refuses_a_bad_age(age: str) -> None:
    assert_usage_error(hookd("dlq", "purge", "--older-than", age, "--yes"), "--older-than")


def test_dlq_purge_needs_an_age() -> None:
    result = hookd("dlq", "purge", "--yes")

    assert result.exit_code == 2
    assert "--older-than" in result.output


# commands that run here --------------------------------------------------------------------------
def test_listen_refuses_a_malformed_secret() -> None:
    result = hookd("listen", "--secret", "not-a-secret")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_listen_refuses_a_bad_status() -> None:
    result = hookd("listen", "--status", "700")

    assert result.exit_code == 2


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    db = tmp_path / "data" / "hookd.db"

    result = hookd("migrate", "--db", str(db))

    assert result.exit_code == 0, result.output
    latest = len(load_migrations("hookd.store.sqlite.migrations"))
    assert f"schema version {latest}" in result.stdout
    assert db.exists()
    assert (db.parent / "hookd.key").exists()
    again = hookd("migrate", "--db", str(db))
    assert again.exit_code == 0
    assert f"schema version {latest}" in again.stdout


def test_serve_with_a_malformed_secret_key_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKD_SECRET_KEY", "not base64!")

    result = hookd("serve", "--db", str(tmp_path / "hookd.db"), "--port", str(free_port()))

    assert_usage_error(result, "HOOKD_SECRET_KEY")


def test_serve_on_a_database_in_use_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "hookd.db"
    with (tmp_path / "hookd.db.lock").open("a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running hookd holds it

        result = hookd("serve", "--db", str(db), "--port", str(free_port()))

    assert_usage_error(result, "is in use by another hookd process")


def test_serve_on_a_port_in_use_fails_cleanly(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        result = hookd("api", "--db", str(tmp_path / "hookd.db"), "--port", str(port))

    assert_usage_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_serve_refuses_a_bad_port() -> None:
    result = hookd("serve", "--port", "70000")

    assert result.exit_code == 2


def test_endpoints_add_and_update_send_the_delivery_limits(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints", 201, {**ENDPOINT, "secret": SECRET})
    path = f"/v1/endpoints/{ENDPOINT['id']}"
    limited = {
        **ENDPOINT,
        "rate_limit": {"per_second": 50.0, "burst": 100},
        "max_in_flight": 8,
    }
    stub.reply("PATCH", path, 200, limited)

    added = remote(
        stub,
        "endpoints",
        "add",
        "https://example.com/hook",
        "-e",
        "*",
        "--rate-limit",
        "50/s:100",
        "--max-in-flight",
        "8",
    )
    assert added.exit_code == 0, added.output
    assert stub.seen[0].json()["rate_limit"] == {"per_second": 50.0, "burst": 100}
    assert stub.seen[0].json()["max_in_flight"] == 8

    updated = remote(stub, "endpoints", "update", ENDPOINT["id"], "--rate-limit", "off")
    assert updated.exit_code == 0, updated.output
    assert stub.seen[1].json() == {"rate_limit": None}
    assert "50/s, bursts of 100" in updated.stdout

    reset = remote(stub, "endpoints", "update", ENDPOINT["id"], "--max-in-flight", "0")
    assert reset.exit_code == 0, reset.output
    assert stub.seen[2].json() == {"max_in_flight": None}

    bad = remote(stub, "endpoints", "update", ENDPOINT["id"], "--rate-limit", "fast")
    assert bad.exit_code != 0
    assert len(stub.seen) == 3


def test_endpoints_resume_can_discard_parked(stub: Stub) -> None:
    path = "/v1/endpoints/ep_1/resume"
    stub.reply("POST", path, 200, {**ENDPOINT, "id": "ep_1", "status": "active"})

    result = remote(stub, "endpoints", "resume", "ep_1", "--discard-parked")

    assert result.exit_code == 0, result.output
    assert stub.seen[0].json() == {"discard_parked": True}
