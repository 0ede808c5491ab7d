"""``hookd endpoints health`` and the circuit-breaker options of ``endpoints add|update``, against
the stub server of test_cli: what each command sends and prints."""

from __future__ import annotations

from typing import Any

from test_cli import ENDPOINT, SECRET, Stub, assert_usage_error, remote
from test_cli import environment as environment  # the fixtures, re-exported
from test_cli import stub as stub

SETTINGS: dict[str, Any] = {
    "enabled": True,
    "window": 60.0,
    "buckets": 12,
    "min_requests": 20,
    "failure_rate": 0.5,
    "cooldown": 30.0,
    "max_cooldown": 600.0,
}
HEALTH: dict[str, Any] = {
    "endpoint_id": ENDPOINT["id"],
    "status": "active",
    "status_reason": None,
    "last_success_at": "2024-05-01T11:00:00.000Z",
    "failing_since": "2024-05-01T11:58:00.000Z",
    "breaker": {
        "state": "open",
        "until": "2024-05-01T12:00:30.000Z",
        "cooldown": 30.0,
        "tripped_at": "2024-05-01T12:00:00.000Z",
        "successes": 4,
        "failures": 21,
        "settings": SETTINGS,
        "history": [
            {
                "at": "2024-05-01T12:00:00.000Z",
                "from": "closed",
                "to": "open",
                "reason": "21 of 25 attempts failed in 60 s",
            }
        ],
    },
    "backoff_until": None,
    "tokens": None,
    "checked_at": "2024-05-01T12:00:05.000Z",
}
HEALTH_PATH = f"/v1/endpoints/{ENDPOINT['id']}/health"


def test_health_shows_the_breaker_and_its_history(stub: Stub) -> None:
    stub.reply("GET", HEALTH_PATH, 200, HEALTH)

    result = remote(stub, "endpoints", "health", ENDPOINT["id"])

    assert result.exit_code == 0, result.output
    assert stub.seen[0].method == "GET" and stub.seen[0].path == HEALTH_PATH
    out = result.stdout
    assert "breaker" in out and "open until" in out
    assert "21 failed, 4 succeeded in the last 1 min" in out
    assert "opens above 50% failed of ≥ 20 attempts" in out
    assert "closed → open" in out
    assert "21 of 25 attempts failed in 60 s" in out


def test_health_of_a_healthy_endpoint(stub: Stub) -> None:
    healthy = {
        **HEALTH,
        "failing_since": None,
        "breaker": {
            **HEALTH["breaker"],
            "state": "closed",
            "until": None,
            "tripped_at": None,
            "cooldown": 0.0,
            "failures": 0,
            "history": [],
        },
        "tokens": 10.0,
    }
    stub.reply("GET", HEALTH_PATH, 200, healthy)

    result = remote(stub, "endpoints", "health", ENDPOINT["id"])

    assert result.exit_code == 0, result.output
    assert "closed" in result.stdout
    assert "10.0" in result.stdout
    assert "→" not in result.stdout


def test_health_json_is_the_raw_answer(stub: Stub) -> None:
    stub.reply("GET", HEALTH_PATH, 200, HEALTH)

    result = remote(stub, "endpoints", "health", ENDPOINT["id"], "--json")

    assert result.exit_code == 0, result.output
    assert '"from": "closed"' in result.stdout


def test_health_of_an_unknown_endpoint_fails_cleanly(stub: Stub) -> None:
    result = remote(stub, "endpoints", "health", "ep_nope")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_add_sends_the_breaker_options(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints", 201, {**ENDPOINT, "secret": SECRET})

    result = remote(
        stub,
        "endpoints",
        "add",
        "https://example.com/hook",
        "-e",
        "*",
        "--breaker-failure-rate",
        "0.25",
        "--breaker-min-requests",
        "5",
        "--breaker-window",
        "2m",
        "--breaker-cooldown",
        "10s",
        "--breaker-max-cooldown",
        "1h",
        "--fallback-url",
        "https://fallback.example/hook",
        "--fallback-after",
        "10m",
    )

    assert result.exit_code == 0, result.output
    sent = stub.seen[0].json()
    assert sent["breaker"] == {
        "failure_rate": 0.25,
        "min_requests": 5,
        "window": 120.0,
        "cooldown": 10.0,
        "max_cooldown": 3600.0,
    }
    assert sent["fallback_after"] == 600.0


def test_add_without_breaker_options_sends_none(stub: Stub) -> None:
    stub.reply("POST", "/v1/endpoints", 201, {**ENDPOINT, "secret": SECRET})

    result = remote(stub, "endpoints", "add", "https://example.com/hook", "-e", "*")

    assert result.exit_code == 0, result.output
    assert "breaker" not in stub.seen[0].json()
    assert "fallback_after" not in stub.seen[0].json()


def test_update_sends_only_the_breaker_settings_given(stub: Stub) -> None:
    path = f"/v1/endpoints/{ENDPOINT['id']}"
    stub.reply("PATCH", path, 200, {**ENDPOINT, "breaker": {**SETTINGS, "enabled": False}})

    off = remote(stub, "endpoints", "update", ENDPOINT["id"], "--no-breaker")
    on = remote(
        stub, "endpoints", "update", ENDPOINT["id"], "--breaker", "--breaker-cooldown", "1m"
    )
    fallback = remote(
        stub,
        "endpoints",
        "update",
        ENDPOINT["id"],
        "--fallback-url",
        "off",
        "--fallback-after",
        "off",
    )

    assert off.exit_code == 0, off.output
    assert "breaker" in off.stdout and "off" in off.stdout
    assert on.exit_code == 0, on.output
    assert fallback.exit_code == 0, fallback.output
    assert [s.json() for s in stub.seen] == [
        {"breaker": {"enabled": False}},
        {"breaker": {"enabled": True, "cooldown": 60.0}},
        {"fallback_url": None, "fallback_after": None},
    ]


def test_update_with_nothing_to_change_is_a_usage_error(stub: Stub) -> None:
    result = remote(stub, "endpoints", "update", ENDPOINT["id"])

    assert_usage_error(result, "nothing to change")
    assert stub.seen == []


def test_a_bad_breaker_age_is_a_usage_error(stub: Stub) -> None:
    result = remote(stub, "endpoints", "update", ENDPOINT["id"], "--breaker-window", "soon")

    assert_usage_error(result, "--breaker-window")
    assert stub.seen == []


def test_server_side_breaker_problems_are_listed(stub: Stub) -> None:
    stub.reply(
        "PATCH",
        f"/v1/endpoints/{ENDPOINT['id']}",
        422,
        {
            "type": "https://hookd.dev/problems/validation",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "invalid endpoint",
            "errors": [{"path": "breaker.failure_rate", "message": "must be more than 0"}],
        },
    )

    result = remote(stub, "endpoints", "update", ENDPOINT["id"], "--breaker-failure-rate", "0")

    assert result.exit_code == 1
    assert "breaker.failure_rate: must be more than 0" in result.stderr
    assert "Traceback" not in result.output


def test_show_describes_the_breaker(stub: Stub) -> None:
    stub.reply(
        "GET",
        f"/v1/endpoints/{ENDPOINT['id']}",
        200,
        {
            **ENDPOINT,
            "breaker": SETTINGS,
            "fallback_url": "https://fallback.example/hook",
            "fallback_after": 600.0,
        },
    )

    result = remote(stub, "endpoints", "show", ENDPOINT["id"])

    assert result.exit_code == 0, result.output
    assert "opens above 50% failed" in result.stdout
    assert "held 10 min by an open breaker" in result.stdout
