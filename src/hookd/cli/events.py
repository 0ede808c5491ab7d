"""``hookd send``: publish an event."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from hookd.cli import _common as common


def send(
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type, e.g. order.filled.")
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="Payload: a JSON object, @file.json, or @- to read stdin. Default: {}.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="A repeat with the same key is not published twice.", show_default=False),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            min=-10,
            max=10,
            help="-10..10: higher is sent first among due deliveries. "
            "Default: each endpoint's default priority.",
            show_default=False,
        ),
    ] = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Publish an event to every endpoint subscribed to its type."""
    body: dict[str, Any] = {"type": event_type, "payload": common.read_json_object(data)}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    if priority is not None:
        body["priority"] = priority
    result = common.connect(server, api_key).post("/v1/events", json=body)
    if as_json:
        common.print_json(result)
        return
    n = result["deliveries"]  # one delivery per subscribed endpoint
    fan_out = f"to {n} endpoint{'' if n == 1 else 's'}"
    if result.get("duplicate"):
        common.success(f"Already published as {result['id']} {fan_out} (same idempotency key)")
        return
    common.success(f"Published {result['id']} ({result['type']}) {fan_out}")
    if n == 0:
        common.err().print(
            Text(f"no endpoint is subscribed to {event_type}", style="yellow"),
            soft_wrap=True,
        )
