"""What the commands share: option types, the connection to a server, output, and errors.

Errors never show a traceback: `HookdGroup` turns hookd's own errors into one red line on
stderr (plus the per-field problems) and an exit code, 1 when the server refused or could not
be reached, 2 when the input or the configuration is wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
import typer.core
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hookd import client, credentials
from hookd.domain import errors
from hookd.domain.errors import Problem

DEFAULT_URL = "http://127.0.0.1:8000"
CONNECTION = "Connection"

EXIT_API = 1
EXIT_USAGE = 2

# Annotated option aliases: each client command declares these three instead of repeating them.
ServerUrl = Annotated[
    str,
    typer.Option(
        "--url", envvar="HOOKD_URL", help="URL of the hookd server.", rich_help_panel=CONNECTION
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="HOOKD_API_KEY",
        help="API key. Default: the key `hookd serve` saved for this URL.",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer as is.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=500, help="How many to show at most.")]
Cursor = Annotated[
    str | None, typer.Option("--cursor", help="Continue a previous listing.", show_default=False)
]

STATUS_STYLES = {
    "active": "green",
    "paused": "yellow",
    "disabled": "red",
    "pending": "yellow",
    "sending": "cyan",
    "delivered": "green",
    "failed": "red",
    "dead": "bold red",
    "parked": "magenta",
    "queued": "blue",
    # attempt outcomes
    "success": "green",
    "retry": "yellow",
    "reject": "red",
    "gone": "red",
}


class HookdGroup(typer.core.TyperGroup):
    """The root command group: hookd's errors become a red message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer may vendor its own click)
        try:
            return super().invoke(ctx)
        except client.ApiError as exc:
            report_api_error(exc)
            raise typer.Exit(EXIT_API) from None
        except errors.ValidationError as exc:
            report(exc.message, exc.problems)
            raise typer.Exit(EXIT_USAGE) from None
        except errors.ConfigError as exc:
            report(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except errors.HookdError as exc:
            report(str(exc))
            raise typer.Exit(EXIT_API) from None


# connection ------------------------------------------------------------------------------------
def connect(url: str, api_key: str | None) -> client.Client:
    """A client for the server at `url`, with the given key or else the one saved for `url`."""
    return client.Client(url, api_key or credentials.load(url))


# output ----------------------------------------------------------------------------------------
def out() -> Console:
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def report(message: str, problems: Iterable[Problem] = ()) -> None:
    """One red line on stderr, then one line per problem."""
    console = err()
    console.print(Text.assemble(("error: ", "bold red"), (message, "red")), soft_wrap=True)
    for problem in problems:
        where = f"{problem.path}: " if problem.path else ""
        console.print(Text(f"  • {where}{problem.message}", style="red"), soft_wrap=True)


def report_api_error(exc: client.ApiError) -> None:
    report(str(exc), exc.errors)
    if exc.status == 401:
        hint = (
            "pass --api-key or set HOOKD_API_KEY; `hookd serve` saves the admin key it "
            f"generates in {credentials.credentials_path()}"
        )
        err().print(Text(hint, style="dim"), soft_wrap=True)


def fail(message: str, *, code: int = EXIT_USAGE) -> NoReturn:
    report(message)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def success(message: str, *details: tuple[str, Text | str]) -> None:
    """A green check line, then aligned ``name  value`` lines."""
    console = out()
    console.print(Text.assemble(("✓ ", "bold green"), message), soft_wrap=True)
    for name, value in details:
        console.print(Text.assemble(("  ", ""), (f"{name:<9}", "dim"), value), soft_wrap=True)


def more(page: Mapping[str, Any]) -> None:
    """Say how to get the next page, if there is one (on stderr, so stdout stays a table)."""
    cursor = page.get("next_cursor")
    if cursor:
        err().print(Text(f"more: repeat with --cursor {cursor}", style="dim"), soft_wrap=True)


def fields(rows: Sequence[tuple[str, Text | str]]) -> Table:
    """A two-column grid of name and value."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(value))
    return grid


def table(*columns: str, flexible: Collection[str] = ()) -> Table:
    """A list table. Only the `flexible` columns give way on a narrow terminal (wrapping, or
    ending in '…' for `clip` cells); the others, ids first, are shown whole."""
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        if column in flexible:
            grid.add_column(column, min_width=6, overflow="fold")
        else:
            grid.add_column(column, no_wrap=True)
    return grid


def clip(value: object) -> Text:
    """A cell shown on one line, cut with '…' when its column is too narrow."""
    cell = text(value)
    cell.no_wrap = True
    cell.overflow = "ellipsis"
    return cell


def status(value: object, reason: object = None) -> Text:
    text = Text(str(value), style=STATUS_STYLES.get(str(value), ""))
    if reason:
        text.append(f" ({reason})", style="dim")
    return text


def text(value: object) -> Text:
    """A value as plain text (never markup); '-' for None or empty."""
    return Text("-" if value is None or value == "" else str(value))


def when(value: object) -> str:
    """An RFC 3339 time, compactly in local time: 14:03:07 today, else Mar 04 14:03."""
    if not isinstance(value, str) or not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value).astimezone()
    except ValueError:
        return value
    now = datetime.now().astimezone()
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S")
    if moment.year == now.year:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def duration(seconds: object) -> str:
    """5 s, 2 min, 1.5 h: a number of seconds for people."""
    if not isinstance(seconds, int | float):
        return "-"
    value = float(seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} s"


# input -----------------------------------------------------------------------------------------
def read_json_object(value: str | None, option: str = "--data") -> dict[str, Any]:
    """``--data``: a JSON object inline, ``@file.json``, or ``@-`` for stdin; {} when not given."""
    if value is None:
        return {}
    raw: str | bytes
    if value == "@-":
        raw, source = typer.get_text_stream("stdin").read(), " on stdin"
    elif value.startswith("@"):
        try:
            raw = Path(value[1:]).expanduser().read_bytes()
        except OSError as exc:
            fail(f"{option}: cannot read {value[1:]}: {exc.strerror or exc}")
        source = f" in {value[1:]}"
    else:
        raw, source = value, ""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(f"{option}: not valid JSON{source}: {exc}")
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(data), "a number")
        fail(f"{option}: must be a JSON object, not {'null' if data is None else kind}")
    return data


def parse_headers(values: Iterable[str], option: str = "--header") -> dict[str, str]:
    """``K=V`` pairs (the value may itself contain '=')."""
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"{option}: expected NAME=VALUE, got {item!r}")
        headers[name.strip()] = value
    return headers


def split_list(values: Iterable[str]) -> list[str]:
    """Repeated options that may also hold comma-separated values: ``-e a,b -e c`` → [a, b, c]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
