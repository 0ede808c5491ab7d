"""``hookd event-types …``: the catalogue of event types, with payload schemas.

``import FILE`` upserts a catalogue such as ``examples/event-types.json``: a JSON list of
``{"name", "description"?, "schema"?, "example"?, "archived"?}`` objects (or an object holding
that list under ``"event_types"``). Types that do not exist are created, those that differ are
changed, the rest are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.syntax import Syntax
from rich.text import Text

from hookd import client
from hookd.cli import _common as common

app = typer.Typer(
    help="Manage event types: names, payload schemas (JSON Schema) and examples.",
    no_args_is_help=True,
)

FIELDS = ("description", "schema", "example", "archived")

Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant", help="Tenant id (admin keys; default: `default`).", show_default=False
    ),
]
Name = Annotated[str, typer.Argument(metavar="NAME", help="Event type, e.g. order.filled.")]


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A JSON catalogue of event types.")],
    tenant: Tenant = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Create or update every event type in FILE; prints what changed."""
    entries = load_catalogue(file)
    api = common.connect(server, api_key)
    outcome: dict[str, list[Any]] = {"created": [], "updated": [], "unchanged": [], "failed": []}
    for entry in entries:
        name = entry["name"]
        try:
            outcome[upsert(api, entry, tenant)].append(name)
        except client.ApiError as exc:
            if exc.status is None or exc.status == 401:
                raise  # nothing else would work either
            problems = [f"{p.path}: {p.message}" if p.path else p.message for p in exc.errors]
            outcome["failed"].append({"name": name, "error": str(exc), "problems": problems})
    if as_json:
        common.print_json(outcome)
    else:
        _print_outcome(outcome)
    if outcome["failed"]:
        raise typer.Exit(common.EXIT_API)


def load_catalogue(file: Path) -> list[dict[str, Any]]:
    """The entries of a catalogue file, each checked for shape (a usage error if wrong)."""
    try:
        data = orjson.loads(file.expanduser().read_bytes())
    except OSError as exc:
        common.fail(f"cannot read {file}: {exc.strerror or exc}")
    except orjson.JSONDecodeError as exc:
        common.fail(f"{file} is not valid JSON: {exc}")
    if isinstance(data, dict) and isinstance(data.get("event_types"), list):
        data = data["event_types"]
    if not isinstance(data, list):
        common.fail(f'{file}: expected a JSON list of event types (or {{"event_types": [...]}})')
    seen: set[str] = set()
    for index, entry in enumerate(data):
        where = f"{file}: entry {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            common.fail(f'{where}: expected an object with a "name"')
        unknown = sorted(set(entry) - {"name", *FIELDS})
        if unknown:
            common.fail(f"{where} ({entry['name']}): unknown fields {', '.join(unknown)}")
        if entry["name"] in seen:
            common.fail(f"{where}: {entry['name']} is listed twice")
        seen.add(entry["name"])
    return data


def upsert(api: client.Client, entry: dict[str, Any], tenant: str | None) -> str:
    """Make the server's event type match `entry`: "created", "updated" or "unchanged"."""
    path = client.path_of("v1", "event-types", entry["name"])
    params = {"tenant_id": tenant}
    fields = {k: entry[k] for k in FIELDS if k in entry}
    try:
        current = api.get(path, params=params)
    except client.ApiError as exc:
        if exc.status != 404:
            raise
        body = {"name": entry["name"], **fields}
        if tenant is not None:
            body["tenant_id"] = tenant
        api.post("/v1/event-types", json=body)
        return "created"
    changes = {k: v for k, v in fields.items() if current.get(k) != v}
    if not changes:
        return "unchanged"
    api.patch(path, json=changes, params=params)
    return "updated"


def _print_outcome(outcome: dict[str, list[Any]]) -> None:
    console = common.out()
    for action, style in (("created", "green"), ("updated", "yellow"), ("unchanged", "dim")):
        for name in outcome[action]:
            console.print(Text.assemble((f"  {action:<9} ", style), name), soft_wrap=True)
    for failure in outcome["failed"]:
        common.report(f"{failure['name']}: {failure['error']}")
        for problem in failure["problems"]:
            common.err().print(Text(f"  • {problem}", style="red"), soft_wrap=True)
    counts = ", ".join(f"{len(outcome[k])} {k}" for k in outcome)
    total = sum(len(v) for v in outcome.values())
    if outcome["failed"]:
        common.err().print(Text(f"Imported {total} event types: {counts}", style="bold red"))
    else:
        common.success(f"Imported {total} event types: {counts}")


@app.command("list")
def list_(
    archived: Annotated[bool, typer.Option("--archived", help="Include archived types.")] = False,
    tenant: Tenant = None,
    limit: common.Limit = 50,
    cursor: common.Cursor = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """List event types, newest first."""
    params = {
        "include_archived": archived,
        "tenant_id": tenant,
        "limit": limit,
        "cursor": cursor,
    }
    page = common.connect(server, api_key).get("/v1/event-types", params=params)
    if as_json:
        common.print_json(page)
        return
    if not page["data"]:
        common.out().print(
            Text("no event types yet: import some with `hookd event-types import FILE`", "dim")
        )
        return
    grid = common.table("name", "schema", "status", "description", flexible=("description",))
    for item in page["data"]:
        grid.add_row(
            common.text(item["name"]),
            Text("yes" if item.get("schema") else "-"),
            Text("archived", style="yellow") if item["archived"] else Text("live", "green"),
            common.clip(item.get("description")),
        )
    common.out().print(grid)
    common.more(page)


@app.command("show")
def show(
    name: Name,
    tenant: Tenant = None,
    server: common.ServerUrl = common.DEFAULT_URL,
    api_key: common.ApiKey = None,
    as_json: common.AsJson = False,
) -> None:
    """Show one event type with its schema and example."""
    item = common.connect(server, api_key).get(
        client.path_of("v1", "event-types", name), params={"tenant_id": tenant}
    )
    if as_json:
        common.print_json(item)
        return
    console = common.out()
    console.print(
        common.fields(
            [
                ("name", item["name"]),
                ("tenant", item["tenant_id"]),
                ("description", common.text(item.get("description"))),
                ("status", "archived" if item["archived"] else "live"),
                ("created", common.when(item.get("created_at"))),
                ("updated", common.when(item.get("updated_at"))),
            ]
        )
    )
    for title in ("schema", "example"):
        value = item.get(title)
        console.print(Text(title, style="bold"))
        if value is None:
            console.print(Text("  -", style="dim"))
        else:
            text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
            console.print(Syntax(text, "json", theme="ansi_dark", background_color="default"))
