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
    }
    body.update({k: v for k, v in optional.items() if v is not None})
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
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Deliver to an endpoint again, starting with what waited."""
    _set_status(endpoint_id, "active", server, api_key, as_json)


def _set_status(
    endpoint_id: str, status: str, server: str, api_key: str | None, as_json: bool
) -> None:
    endpoint = common.connect(server, api_key).patch(
        client.path_of("v1", "endpoints", endpoint_id), json={"status": status}
    )
    if as_json:
        common.print_json(endpoint)
        return
    verb = "Resumed" if status == "active" else "Paused"
    common.success(
        f"{verb} endpoint {endpoint['id']}", ("status", common.status(endpoint["status"]))
    )


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
