"""The ``hookd`` command.

Every command talks to a running server over HTTP (``--url``, ``--api-key``), except those that
run something here: ``serve``, ``api``, ``migrate`` and ``listen``. Errors are one red line on
stderr, exit status 1 when the server refused or could not be reached, 2 for bad input.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hookd import __version__
from hookd.cli import _common, deliveries, endpoints, event_types, events, keys, local, stats

app = typer.Typer(
    name="hookd",
    cls=_common.HookdGroup,
    help="hookd: webhook delivery with signing, retries and dead letters.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold API keys and secrets
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hookd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """hookd: webhook delivery with signing, retries and dead letters."""


_RUN_HERE = "Run here"
_TALK = "Talk to a server"

app.command("serve", rich_help_panel=_RUN_HERE)(local.serve)
app.command("api", rich_help_panel=_RUN_HERE)(local.api)
app.command("worker", rich_help_panel=_RUN_HERE)(local.worker)
app.command("migrate", rich_help_panel=_RUN_HERE)(local.migrate)
app.command("listen", rich_help_panel=_RUN_HERE)(local.listen)
app.command("send", rich_help_panel=_TALK)(events.send)
app.add_typer(endpoints.app, name="endpoints", rich_help_panel=_TALK)
app.add_typer(deliveries.app, name="deliveries", rich_help_panel=_TALK)
app.add_typer(deliveries.dlq, name="dlq", rich_help_panel=_TALK)
app.add_typer(event_types.app, name="event-types", rich_help_panel=_TALK)
app.add_typer(keys.app, name="keys", rich_help_panel=_TALK)
app.command("stats", rich_help_panel=_TALK)(stats.stats)


def main() -> None:
    app(prog_name="hookd")


__all__ = ["app", "main"]
