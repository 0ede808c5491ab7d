"""``hookd stats``: delivery totals, success rate, latency, and the busiest types and endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hookd.cli import _common as common
from hookd.cli import endpoints


def stats(
    window: Annotated[
        str, typer.Option("--window", "-w", metavar="AGE", help="How far back: 24h, 7d, 90m.")
    ] = "24h",
    top: Annotated[
        int, typer.Option("--top", min=1, max=100, help="How many event types and endpoints.")
    ] = 10,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Delivery stats over a window (a tenant key sees its own tenant)."""
    found = common.connect(server, api_key).get("/v1/stats", params={"window": window, "top": top})
    if as_json:
        common.print_json(found)
        return
    console = common.out()
    console.print(endpoints.stats_table(found))
    for title, rows, key in (
        ("event type", found["by_event_type"], "event_type"),
        ("endpoint", found["by_endpoint"], "endpoint_id"),
    ):
        if rows:
            console.print()
            console.print(_groups(title, rows, key))


def _groups(title: str, rows: list[dict[str, Any]], key: str) -> Any:
    grid = common.table(title, "deliveries", "delivered", "failed", "dead", "success")
    for row in rows:
        counts = row["deliveries"]
        rate = row.get("success_rate")
        grid.add_row(
            common.text(row[key]),
            str(row["total"]),
            str(counts["delivered"]),
            str(counts["failed"]),
            str(counts["dead"]),
            "-" if rate is None else f"{rate:.1%}",
        )
    return grid
