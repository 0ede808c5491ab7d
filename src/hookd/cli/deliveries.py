"""``hookd deliveries …`` (one event for one endpoint, and its attempts) and ``hookd dlq …``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hookd import client
from hookd.cli import _common as common
from hookd.domain.models import DeliveryStatus

app = typer.Typer(help="Inspect and retry deliveries.", no_args_is_help=True)
dlq = typer.Typer(
    help="Dead letters: deliveries that failed for good. List, replay, purge.",
    no_args_is_help=True,
)

DeliveryId = Annotated[str, typer.Argument(metavar="ID", help="Delivery id (dlv_…).")]
EndpointFilter = Annotated[
    str | None, typer.Option("--endpoint", help="Only this endpoint's.", show_default=False)
]

#: `--older-than` as the API reads it: 30d, 12h, 90m, 45s or plain seconds.
_DURATION = re.compile(r"\d+(\.\d+)?[smhd]?")


@app.command("list")
def list_(
    status: Annotated[
        list[DeliveryStatus] | None,
        typer.Option("--status", help="Only these statuses (repeatable).", show_default=False),
    ] = None,
    endpoint: EndpointFilter = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event's.", show_default=False)
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only this event type.", show_default=False)
    ] = None,
    limit: common.Limit = 50,
    cursor: common.Cursor = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """List deliveries, newest first."""
    params = {
        "status": [s.value for s in status or []],
        "endpoint_id": endpoint,
        "event_id": event,
        "event_type": event_type,
        "limit": limit,
        "cursor": cursor,
    }
    page = common.connect(server, api_key).get("/v1/deliveries", params=params)
    _print_page(page, as_json, empty="no deliveries")


@app.command("show")
def show(
    delivery_id: DeliveryId,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Show a delivery and its attempts."""
    delivery = common.connect(server, api_key).get(client.path_of("v1", "deliveries", delivery_id))
    if as_json:
        common.print_json(delivery)
        return
    common.out().print(describe(delivery))


@app.command("retry")
def retry(
    delivery_id: DeliveryId,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Send a delivery again now, with a fresh attempt budget, whatever its state."""
    delivery = common.connect(server, api_key).post(
        client.path_of("v1", "deliveries", delivery_id, "retry")
    )
    if as_json:
        common.print_json(delivery)
        return
    common.success(
        f"Retrying delivery {delivery['id']}", ("status", common.status(delivery["status"]))
    )


@dlq.command("list")
def dlq_list(
    endpoint: EndpointFilter = None,
    limit: common.Limit = 50,
    cursor: common.Cursor = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """List dead letters (failed or dead deliveries)."""
    params = {"endpoint_id": endpoint, "limit": limit, "cursor": cursor}
    page = common.connect(server, api_key).get("/v1/dead-letters", params=params)
    _print_page(page, as_json, empty="no dead letters")


@dlq.command("replay")
def dlq_replay(
    delivery_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="ID", help="Dead letters to replay.", show_default=False),
    ] = None,
    endpoint: EndpointFilter = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter (of --endpoint, if given).")
    ] = False,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Make dead letters due again: by id, by endpoint, or --all."""
    if not (delivery_ids or endpoint or all_):
        common.fail("say which dead letters to replay: IDs, --endpoint ID, or --all for every one")
    body: dict[str, Any] = {}
    if delivery_ids:
        body["delivery_ids"] = list(delivery_ids)
    if endpoint:
        body["endpoint_id"] = endpoint
    result = common.connect(server, api_key).post("/v1/dead-letters/replay", json=body)
    if as_json:
        common.print_json(result)
        return
    common.success(f"Replayed {_count(result['replayed'], 'dead letter')}")


@dlq.command("purge")
def dlq_purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Age, e.g. 7d, 12h, 90m, 45s.", metavar="AGE", show_default=False
        ),
    ],
    endpoint: EndpointFilter = None,
    yes: common.Yes = False,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Delete dead letters that ended longer ago than --older-than."""
    age = older_than.strip().lower()
    if not _DURATION.fullmatch(age):
        common.fail(f"--older-than: expected an age like 7d, 12h, 90m or 45s, got {older_than!r}")
    if not yes:
        scope = f" of endpoint {endpoint}" if endpoint else ""
        typer.confirm(f"Delete dead letters{scope} older than {age}?", abort=True)
    result = common.connect(server, api_key).delete(
        "/v1/dead-letters", params={"older_than": age, "endpoint_id": endpoint}
    )
    if as_json:
        common.print_json(result)
        return
    common.success(f"Purged {_count(result['purged'], 'dead letter')}")


def _print_page(page: dict[str, Any], as_json: bool, *, empty: str) -> None:
    if as_json:
        common.print_json(page)
        return
    if not page["data"]:
        common.out().print(Text(empty, style="dim"))
        return
    common.out().print(deliveries_table(page["data"]))
    common.more(page)


def deliveries_table(deliveries: Sequence[dict[str, Any]]) -> Table:
    """Deliveries, one a line; `deliveries show` has the rest (endpoint, next try, attempts)."""
    grid = common.table(
        "id", "type", "status", "tries", "last", "created", flexible=("type", "last")
    )
    grid.columns[3].justify = "right"
    for d in deliveries:
        grid.add_row(
            common.text(d["id"]),
            common.clip(d.get("event_type")),
            common.status(d.get("status")),
            common.text(d.get("attempts")),
            common.clip(_last_result(d)),
            common.when(d.get("created_at")),
        )
    return grid


def describe(delivery: dict[str, Any]) -> Group:
    """A delivery as `GET /v1/deliveries/{id}` returns it, with its `attempt_log`."""
    log = [a for a in delivery.get("attempt_log") or [] if isinstance(a, dict)]
    rows: list[tuple[str, Text | str]] = [
        ("id", delivery["id"]),
        ("event", f"{delivery.get('event_id')} ({delivery.get('event_type')})"),
        ("endpoint", common.text(delivery.get("endpoint_id"))),
        ("status", common.status(delivery.get("status"))),
        ("attempts", common.text(delivery.get("total_attempts", len(log)))),
        ("last", common.text(_last_result(delivery))),
        ("next try", common.when(delivery.get("next_attempt_at"))),
        ("created", common.when(delivery.get("created_at"))),
        ("updated", common.when(delivery.get("updated_at"))),
    ]
    parts: list[Any] = [common.fields(rows)]
    if log:
        grid = common.table(
            "#", "started", "duration", "outcome", "status", "error", flexible=("error",)
        )
        for a in log:
            grid.add_row(
                common.text(a.get("number")),
                common.when(a.get("started_at")),
                _ms(a.get("duration_ms")),
                common.status(a.get("outcome")),
                common.text(a.get("status_code")),
                common.text(a.get("error")),
            )
        parts += [Text(), Text("attempts", style="bold"), grid]
    return Group(*parts)


def _last_result(delivery: dict[str, Any]) -> str | None:
    code, error = delivery.get("last_status_code"), delivery.get("last_error")
    if code is not None and error:
        return f"{code} {error}"
    return str(code) if code is not None else error


def _ms(value: object) -> str:
    return f"{value:.0f} ms" if isinstance(value, int | float) else "-"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
