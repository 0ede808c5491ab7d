"""``hookd endpoints …``: where events are delivered."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hookd import client
from hookd.cli import _common as common

app = typer.Typer(help="Manage endpoints: where events are delivered.", no_args_is_help=True)

EndpointId = Annotated[str, typer.Argument(metavar="ID", help="Endpoint id (ep_…).")]
RateLimitOption = Annotated[
    str | None,
    typer.Option(
        "--rate-limit",
        help="Delivery rate limit, COUNT/UNIT[:BURST] (e.g. 50/s:100, 600/m); `off` removes it. "
        "Shared by every worker process.",
        show_default=False,
    ),
]
MaxInFlightOption = Annotated[
    int | None,
    typer.Option(
        "--max-in-flight",
        min=0,
        max=10_000,
        help="Requests in flight to it at once, per worker process; 0: the server's default.",
        show_default=False,
    ),
]


_BREAKER_PANEL = "Circuit breaker"
BreakerOption = Annotated[
    bool | None,
    typer.Option(
        "--breaker/--no-breaker",
        help="Turn the circuit breaker on or off (on by default for a new endpoint).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
BreakerFailureRateOption = Annotated[
    float | None,
    typer.Option(
        "--breaker-failure-rate",
        metavar="RATE",
        help="Open when more than this share of attempts fails in the window (0..1; e.g. 0.5).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
BreakerMinRequestsOption = Annotated[
    int | None,
    typer.Option(
        "--breaker-min-requests",
        metavar="N",
        help="No verdict on fewer attempts than this in the window (default 20).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
BreakerWindowOption = Annotated[
    str | None,
    typer.Option(
        "--breaker-window",
        metavar="AGE",
        help="The window the failure rate is measured over: 60s, 5m (default 60s).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
BreakerCooldownOption = Annotated[
    str | None,
    typer.Option(
        "--breaker-cooldown",
        metavar="AGE",
        help="How long it stays open before a probe: 30s, 2m (default 30s; doubles with each "
        "failed probe).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
BreakerMaxCooldownOption = Annotated[
    str | None,
    typer.Option(
        "--breaker-max-cooldown",
        metavar="AGE",
        help="The longest the doubling cool-down gets (default 10m).",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]
FallbackAfterOption = Annotated[
    str | None,
    typer.Option(
        "--fallback-after",
        metavar="AGE",
        help="Send what an open breaker holds back to the fallback URL after this long (10m, "
        "1h); `off` waits for the breaker to close. Needs a fallback URL.",
        show_default=False,
        rich_help_panel=_BREAKER_PANEL,
    ),
]


def _breaker(
    enabled: bool | None,
    failure_rate: float | None,
    min_requests: int | None,
    window: str | None,
    cooldown: str | None,
    max_cooldown: str | None,
    fallback_after: str | None,
) -> dict[str, Any]:
    """The request fields for the circuit-breaker options (only those given; the server keeps
    or defaults the rest)."""
    settings: dict[str, Any] = {
        "enabled": enabled,
        "failure_rate": failure_rate,
        "min_requests": min_requests,
        "window": None if window is None else _seconds(window, "--breaker-window"),
        "cooldown": None if cooldown is None else _seconds(cooldown, "--breaker-cooldown"),
        "max_cooldown": (
            None if max_cooldown is None else _seconds(max_cooldown, "--breaker-max-cooldown")
        ),
    }
    fields: dict[str, Any] = {}
    given = {k: v for k, v in settings.items() if v is not None}
    if given:
        fields["breaker"] = given
    if fallback_after is not None:
        off = fallback_after.strip().lower() in ("off", "none")
        fields["fallback_after"] = None if off else _seconds(fallback_after, "--fallback-after")
    return fields


def _limits(rate_limit: str | None, max_in_flight: int | None) -> dict[str, Any]:
    """The request fields for `--rate-limit` and `--max-in-flight` (only those given)."""
    from hookd import config  # the rate-limit format is the server's

    fields: dict[str, Any] = {}
    if rate_limit is not None:
        try:
            parsed = config.parse_rate_limit(rate_limit, name="--rate-limit")
        except Exception as exc:
            raise typer.BadParameter(str(exc), param_hint="--rate-limit") from None
        fields["rate_limit"] = (
            None if parsed is None else {"per_second": parsed.per_second, "burst": parsed.burst}
        )
    if max_in_flight is not None:
        fields["max_in_flight"] = max_in_flight or None
    return fields


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to deliver (http or https).")],
    events: Annotated[
        list[str],
        typer.Option(
            "--events",
            "-e",
            help="Event types to subscribe to: exact, `order.*` or `*`. Repeat or comma-separate.",
        ),
    ],
    secret: Annotated[
        str | None,
        typer.Option(
            help="Signing secret (whsec_…). Default: a new random one.", show_default=False
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="Custom header sent with every request, NAME=VALUE."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Request timeout in seconds.", show_default=False)
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Attempts before a dead letter.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option(show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    default_priority: Annotated[
        int | None,
        typer.Option(
            min=-10,
            max=10,
            help="Priority of its deliveries when an event gives none (-10..10). Default: 0.",
            show_default=False,
        ),
    ] = None,
    rate_limit: RateLimitOption = None,
    max_in_flight: MaxInFlightOption = None,
    fallback_url: Annotated[
        str | None,
        typer.Option(
            help="Where deliveries go once dead-lettered at URL (same body, secret and id).",
            show_default=False,
        ),
    ] = None,
    fifo: Annotated[
        bool,
        typer.Option(
            "--fifo",
            help="Deliver strictly in publish order, one at a time (a failing delivery blocks "
            "this endpoint until it succeeds or ends).",
        ),
    ] = False,
    breaker: BreakerOption = None,
    breaker_failure_rate: BreakerFailureRateOption = None,
    breaker_min_requests: BreakerMinRequestsOption = None,
    breaker_window: BreakerWindowOption = None,
    breaker_cooldown: BreakerCooldownOption = None,
    breaker_max_cooldown: BreakerMaxCooldownOption = None,
    fallback_after: FallbackAfterOption = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Register an endpoint; prints its id and signing secret (shown only this once)."""
    body: dict[str, Any] = {"url": url, "event_types": common.split_list(events)}
    optional = {
        "secret": secret,
        "headers": common.parse_headers(header or []) or None,
        "timeout": timeout,
        "max_attempts": max_attempts,
        "name": name,
        "description": description,
        "default_priority": default_priority,
        "ordering": "fifo" if fifo else None,
        "fallback_url": fallback_url,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body.update({k: v for k, v in _limits(rate_limit, max_in_flight).items() if v is not None})
    body.update(
        {
            k: v
            for k, v in _breaker(
                breaker,
                breaker_failure_rate,
                breaker_min_requests,
                breaker_window,
                breaker_cooldown,
                breaker_max_cooldown,
                fallback_after,
            ).items()
            if v is not None
        }
    )
    created = common.connect(server, api_key).post("/v1/endpoints", json=body)
    if as_json:
        common.print_json(created)
        return
    common.success(
        f"Created endpoint {created['id']}",
        ("url", created["url"]),
        ("events", ", ".join(created["event_types"])),
    )
    common.out().print(
        Text.assemble(
            ("Signing secret (shown once): ", "bold"),
            (created["secret"], "bold yellow"),
            ("\nGive it to the receiver, which verifies signatures with it.", "dim"),
        ),
        soft_wrap=True,
    )


@app.command("list")
def list_(
    limit: common.Limit = 50,
    cursor: common.Cursor = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """List endpoints."""
    page = common.connect(server, api_key).get(
        "/v1/endpoints", params={"limit": limit, "cursor": cursor}
    )
    if as_json:
        common.print_json(page)
        return
    if not page["data"]:
        common.out().print(
            Text("no endpoints yet: add one with `hookd endpoints add`", style="dim")
        )
        return
    grid = common.table("id", "url", "events", "status", flexible=("url", "events"))
    for endpoint in page["data"]:
        grid.add_row(
            common.text(endpoint["id"]),
            common.text(endpoint["url"]),
            common.text(", ".join(endpoint["event_types"])),
            common.status(endpoint["status"]),
        )
    common.out().print(grid)
    common.more(page)


@app.command("show")
def show(
    endpoint_id: EndpointId,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Show one endpoint."""
    endpoint = common.connect(server, api_key).get(client.path_of("v1", "endpoints", endpoint_id))
    if as_json:
        common.print_json(endpoint)
        return
    common.out().print(describe(endpoint))


@app.command("rm")
def remove(
    endpoint_id: EndpointId,
    yes: common.Yes = False,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
) -> None:
    """Delete an endpoint and its deliveries."""
    if not yes:
        typer.confirm(f"Delete endpoint {endpoint_id} and its delivery log?", abort=True)
    common.connect(server, api_key).delete(client.path_of("v1", "endpoints", endpoint_id))
    common.success(f"Deleted endpoint {endpoint_id}")


@app.command("update")
def update(
    endpoint_id: EndpointId,
    rate_limit: RateLimitOption = None,
    max_in_flight: MaxInFlightOption = None,
    fallback_url: Annotated[
        str | None,
        typer.Option(
            help="Where deliveries go once dead-lettered (or held back by an open breaker past "
            "--fallback-after); `off` removes it.",
            show_default=False,
        ),
    ] = None,
    breaker: BreakerOption = None,
    breaker_failure_rate: BreakerFailureRateOption = None,
    breaker_min_requests: BreakerMinRequestsOption = None,
    breaker_window: BreakerWindowOption = None,
    breaker_cooldown: BreakerCooldownOption = None,
    breaker_max_cooldown: BreakerMaxCooldownOption = None,
    fallback_after: FallbackAfterOption = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Change an endpoint's delivery limits, circuit breaker and fallback (only the options
    given; breaker settings left out keep their value)."""
    changes = _limits(rate_limit, max_in_flight)
    if fallback_url is not None:
        changes["fallback_url"] = None if fallback_url.strip().lower() == "off" else fallback_url
    changes.update(
        _breaker(
            breaker,
            breaker_failure_rate,
            breaker_min_requests,
            breaker_window,
            breaker_cooldown,
            breaker_max_cooldown,
            fallback_after,
        )
    )
    if not changes:
        common.fail(
            "nothing to change: give --rate-limit, --max-in-flight, --fallback-url, "
            "--fallback-after or a --breaker option"
        )
    endpoint = common.connect(server, api_key).patch(
        client.path_of("v1", "endpoints", endpoint_id), json=changes
    )
    if as_json:
        common.print_json(endpoint)
        return
    common.success(
        f"Updated endpoint {endpoint['id']}", *_limit_rows(endpoint), *_breaker_rows(endpoint)
    )


def _limit_rows(endpoint: dict[str, Any]) -> list[tuple[str, str]]:
    limit = endpoint.get("rate_limit")
    rate = "-" if not limit else f"{limit['per_second']:g}/s, bursts of {limit['burst']}"
    in_flight = endpoint.get("max_in_flight")
    return [
        ("rate limit", rate),
        ("max in flight", "server default" if in_flight is None else str(in_flight)),
    ]


def _breaker_rows(endpoint: dict[str, Any]) -> list[tuple[str, str]]:
    settings = endpoint.get("breaker")
    after = endpoint.get("fallback_after")
    rows = [("breaker", breaker_settings(settings))]
    if after is not None or endpoint.get("fallback_url"):
        rows.append(("fallback", _fallback(endpoint.get("fallback_url"), after)))
    return rows


def breaker_settings(settings: object) -> str:
    """``opens above 50% failed of ≥ 20 in 1 min; probes after 30 s (≤ 10 min)`` or ``off``."""
    if not isinstance(settings, dict):
        return "-"
    if not settings.get("enabled", True):
        return "off"
    rate = settings.get("failure_rate")
    share = f"{rate:.0%}" if isinstance(rate, int | float) else "?"
    return (
        f"opens above {share} failed of ≥ {settings.get('min_requests')} attempts in "
        f"{common.duration(settings.get('window'))}; probes after "
        f"{common.duration(settings.get('cooldown'))} (up to "
        f"{common.duration(settings.get('max_cooldown'))})"
    )


def _fallback(url: object, after: object) -> str:
    where = "-" if not url else str(url)
    if after is None:
        return f"{where} (once dead-lettered)"
    return f"{where} (once dead-lettered, or held {common.duration(after)} by an open breaker)"


@app.command("health")
def health(
    endpoint_id: EndpointId,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Whether an endpoint is being delivered to now: status, circuit breaker, back-off."""
    found = common.connect(server, api_key).get(
        client.path_of("v1", "endpoints", endpoint_id, "health")
    )
    if as_json:
        common.print_json(found)
        return
    common.out().print(health_table(found))
    history = found.get("breaker", {}).get("history") or []
    if history:
        grid = common.table("when", "change", "reason", flexible=("reason",))
        for step in reversed(history):
            grid.add_row(
                common.when(step.get("at")),
                Text.assemble(_state(step.get("from")), (" → ", "dim"), _state(step.get("to"))),
                common.text(step.get("reason")),
            )
        common.out().print()
        common.out().print(grid)


_BREAKER_STYLES = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def _state(value: object) -> Text:
    name = str(value)
    return Text(name.replace("_", "-"), style=_BREAKER_STYLES.get(name, ""))


def health_table(found: dict[str, Any]) -> Table:
    breaker = found.get("breaker") or {}
    settings = breaker.get("settings") or {}
    state = _state(breaker.get("state"))
    if breaker.get("state") == "open":
        state.append(f" until {common.when(breaker.get('until'))}", style="dim")
    elif breaker.get("state") == "half_open":
        state.append(" (a probe is out)", style="dim")
    if not settings.get("enabled", True):
        state.append(" (turned off)", style="dim")
    successes, failures = breaker.get("successes", 0), breaker.get("failures", 0)
    window = (
        f"{failures} failed, {successes} succeeded in the last "
        f"{common.duration(settings.get('window'))}"
    )
    tokens = found.get("tokens")
    rows: list[tuple[str, Text | str]] = [
        ("endpoint", found.get("endpoint_id", "-")),
        ("status", common.status(found.get("status"), found.get("status_reason"))),
        ("breaker", state),
        ("window", window),
        ("settings", breaker_settings(settings)),
    ]
    if breaker.get("tripped_at"):
        rows.append(("tripped", common.when(breaker.get("tripped_at"))))
    if breaker.get("state") != "closed" and breaker.get("cooldown"):
        rows.append(("cool-down", common.duration(breaker.get("cooldown"))))
    rows += [
        (
            "back-off",
            "-"
            if not found.get("backoff_until")
            else f"until {common.when(found.get('backoff_until'))}",
        ),
        ("tokens", "-" if tokens is None else f"{tokens:.1f}"),
        ("last success", common.when(found.get("last_success_at"))),
        ("failing since", common.when(found.get("failing_since"))),
    ]
    return common.fields(rows)


@app.command("pause")
def pause(
    endpoint_id: EndpointId,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Stop delivering to an endpoint; its deliveries wait (nothing is dropped)."""
    _set_status(endpoint_id, "paused", server, api_key, as_json)


@app.command("resume")
def resume(
    endpoint_id: EndpointId,
    discard_parked: Annotated[
        bool,
        typer.Option(
            "--discard-parked", help="Delete what waited instead of sending it (not undoable)."
        ),
    ] = False,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Deliver to an endpoint again, starting with what waited."""
    body = {"discard_parked": True} if discard_parked else None
    _set_status(endpoint_id, "active", server, api_key, as_json, body)


def _set_status(
    endpoint_id: str,
    status: str,
    server: str,
    api_key: str | None,
    as_json: bool,
    body: dict[str, Any] | None = None,
) -> None:
    action = "resume" if status == "active" else "pause"
    endpoint = common.connect(server, api_key).post(
        client.path_of("v1", "endpoints", endpoint_id, action), json=body
    )
    if as_json:
        common.print_json(endpoint)
        return
    verb = "Resumed" if status == "active" else "Paused"
    common.success(
        f"{verb} endpoint {endpoint['id']}", ("status", common.status(endpoint["status"]))
    )


@app.command("rotate-secret")
def rotate_secret(
    endpoint_id: EndpointId,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="AGE",
            help="How long the old secret stays valid beside the new one: 24h, 90m, 7d, 0 "
            "(at most 7d).",
        ),
    ] = "24h",
    secret: Annotated[
        str | None,
        typer.Option(
            help="The new secret (whsec_…). Default: a new random one.", show_default=False
        ),
    ] = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Sign with a new secret; requests carry both signatures until the grace period ends."""
    body: dict[str, Any] = {"grace_period": _seconds(grace, "--grace")}
    if secret is not None:
        body["secret"] = secret
    rotated = common.connect(server, api_key).post(
        client.path_of("v1", "endpoints", endpoint_id, "secret", "rotate"), json=body
    )
    if as_json:
        common.print_json(rotated)
        return
    common.success(
        f"Rotated the secret of endpoint {endpoint_id}",
        ("old ends", common.when(rotated["expires_at"])),
    )
    common.out().print(
        Text.assemble(
            ("New signing secret (shown once): ", "bold"),
            (rotated["secret"], "bold yellow"),
            ("\nUntil the old one ends, every request is signed with both.", "dim"),
        ),
        soft_wrap=True,
    )


@app.command("test")
def send_test(
    endpoint_id: EndpointId,
    event_type: Annotated[
        str, typer.Option("--type", "-t", help="The event type the receiver sees.")
    ] = "hookd.test",
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help='The payload: a JSON object, @file.json or @- for stdin. Default {"test": true}.',
            show_default=False,
        ),
    ] = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Send one signed test event to an endpoint now and show what it answered."""
    body: dict[str, Any] = {"event_type": event_type}
    if data is not None:
        body["payload"] = common.read_json_object(data)
    result = common.connect(server, api_key).post(
        client.path_of("v1", "endpoints", endpoint_id, "test"), json=body
    )
    if as_json:
        common.print_json(result)
        return
    answered = result.get("status_code")
    line = f"{result['outcome']}: HTTP {answered}" if answered is not None else result["outcome"]
    rows: list[tuple[str, Text | str]] = [
        ("result", common.status(result["outcome"], result.get("error"))),
        ("status", common.text(answered)),
        ("time", f"{result['duration_ms']:.1f} ms"),
        ("webhook-id", result["message_id"]),
        ("response", common.text(result.get("response_body"))),
    ]
    if result["outcome"] == "success":
        common.success(f"Test event delivered to {result['url']} ({line})")
    else:
        common.err().print(
            Text(f"✗ test event to {result['url']} failed ({line})", style="bold red"),
            soft_wrap=True,
        )
    common.out().print(common.fields(rows))
    if result["outcome"] != "success":
        raise typer.Exit(common.EXIT_API)


@app.command("stats")
def stats(
    endpoint_id: EndpointId,
    window: Annotated[
        str, typer.Option("--window", "-w", metavar="AGE", help="How far back: 24h, 7d, 90m.")
    ] = "24h",
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Deliveries by status, success rate and latency percentiles over a window."""
    found = common.connect(server, api_key).get(
        client.path_of("v1", "endpoints", endpoint_id, "stats"), params={"window": window}
    )
    if as_json:
        common.print_json(found)
        return
    common.out().print(stats_table(found))


def stats_table(found: dict[str, Any]) -> Table:
    """The common part of `hookd endpoints stats` and `hookd stats`."""
    counts = found["deliveries"]
    latency = found["latency"]
    rate = found.get("success_rate")
    rows: list[tuple[str, Text | str]] = [
        ("window", f"{common.duration(found['window'])} (since {common.when(found['since'])})"),
        ("deliveries", str(found["total"])),
        *(
            (f"  {name}", Text(str(n), style=common.STATUS_STYLES.get(name, "")))
            for name, n in counts.items()
            if n
        ),
        ("success", "-" if rate is None else f"{rate:.1%}"),
        ("attempts", str(latency["attempts"])),
        (
            "latency",
            "-"
            if latency["p50_ms"] is None
            else f"p50 {latency['p50_ms']:.1f} ms · p95 {latency['p95_ms']:.1f} ms · "
            f"p99 {latency['p99_ms']:.1f} ms · mean {latency['mean_ms']:.1f} ms",
        ),
    ]
    return common.fields(rows)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str, option: str) -> float:
    """`24h`, `90m`, `7d`, `45s`, `1.5h` or plain seconds, as seconds."""
    value = text.strip().lower()
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        common.fail(f"{option}: expected an age like 24h, 90m, 7d or 0, got {text!r}")
    if not (seconds >= 0 and seconds != float("inf")):
        common.fail(f"{option}: expected an age like 24h, 90m, 7d or 0, got {text!r}")
    return seconds


def describe(endpoint: dict[str, Any]) -> Table:
    headers = endpoint.get("headers") or {}
    rows: list[tuple[str, Text | str]] = [
        ("id", endpoint["id"]),
        ("url", endpoint["url"]),
        ("name", common.text(endpoint.get("name"))),
        ("description", common.text(endpoint.get("description"))),
        ("events", ", ".join(endpoint.get("event_types", []))),
        ("status", common.status(endpoint.get("status"), endpoint.get("status_reason"))),
        ("timeout", common.duration(endpoint.get("timeout"))),
        ("retries", retry_policy(endpoint.get("retry_policy"))),
        *_limit_rows(endpoint),
        *_breaker_rows(endpoint),
        ("headers", ", ".join(headers) or "-"),
        ("secret", common.text(endpoint.get("secret_preview"))),
        ("created", common.when(endpoint.get("created_at"))),
        ("updated", common.when(endpoint.get("updated_at"))),
    ]
    return common.fields(rows)


def retry_policy(policy: object) -> str:
    """``schedule: 0 s, 5 s, 5 min (3 attempts)`` or ``exponential from 5 s x2, …``."""
    if not isinstance(policy, dict):
        return "-"
    if policy.get("kind") == "schedule":
        delays = policy.get("delays") or []
        shown = ", ".join(common.duration(d) for d in delays[:6]) + (
            ", …" if len(delays) > 6 else ""
        )
        return f"schedule: {shown} ({len(delays)} attempts)"
    return (
        f"exponential from {common.duration(policy.get('initial'))} x{policy.get('factor')}, "
        f"at most {common.duration(policy.get('max_delay'))} apart "
        f"({policy.get('max_attempts')} attempts)"
    )
