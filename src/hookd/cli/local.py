"""The commands that run something here rather than ask a server: serve, api, migrate, listen."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from hookd import server
from hookd.cli import _common as common
from hookd.config import MAX_API_PROCESSES, MAX_WORKER_PROCESSES, Settings
from hookd.policy import signing
from hookd.receiver import listen as receiver


class LogLevel(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


Db = Annotated[
    Path, typer.Option("--db", envvar="HOOKD_DB", help="SQLite database file.", metavar="PATH")
]
Host = Annotated[str, typer.Option("--host", envvar="HOOKD_HOST", help="Address to listen on.")]
Port = Annotated[
    int, typer.Option("--port", envvar="HOOKD_PORT", min=1, max=65535, help="Port to listen on.")
]
Level = Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False, help="Log level.")]
AccessLog = Annotated[bool, typer.Option("--access-log", help="Log every HTTP request.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HOOKD_DATABASE_URL",
        help="PostgreSQL URL (postgresql://user:password@host:5432/db): many API and worker "
        "processes share it. Unset: SQLite at --db.",
        metavar="URL",
        show_default=False,
    ),
]

WorkerProcesses = Annotated[
    int | None,
    typer.Option(
        "--worker-processes",
        envvar="HOOKD_WORKER_PROCESSES",
        min=1,
        max=MAX_WORKER_PROCESSES,
        help="Delivery worker processes: this one and N-1 more it starts (one per core). "
        "[default: 1]",
        metavar="N",
        show_default=False,
    ),
]

ApiProcesses = Annotated[
    int | None,
    typer.Option(
        "--api-processes",
        envvar="HOOKD_API_PROCESSES",
        min=1,
        max=MAX_API_PROCESSES,
        help="API processes: this one and N-1 more it starts, serving the same port (one per "
        "core). [default: 1]",
        metavar="N",
        show_default=False,
    ),
]

DEFAULT_DB = Path("hookd.db")


def serve(
    db: Db = DEFAULT_DB,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    log_level: Level = LogLevel.INFO,
    access_log: AccessLog = False,
    database_url: DatabaseUrl = None,
    worker_processes: WorkerProcesses = None,
    api_processes: ApiProcesses = None,
) -> None:
    """Run the API and the delivery worker in one process (Ctrl-C stops it gracefully)."""
    _serve(
        db,
        host,
        port,
        log_level,
        access_log,
        run_worker=True,
        database_url=database_url,
        worker_processes=worker_processes,
        api_processes=api_processes,
    )


def api(
    db: Db = DEFAULT_DB,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    log_level: Level = LogLevel.INFO,
    access_log: AccessLog = False,
    database_url: DatabaseUrl = None,
    api_processes: ApiProcesses = None,
) -> None:
    """Run the API alone, without the delivery worker."""
    _serve(
        db,
        host,
        port,
        log_level,
        access_log,
        run_worker=False,
        database_url=database_url,
        api_processes=api_processes,
    )


def worker(
    db: Db = DEFAULT_DB,
    log_level: Level = LogLevel.INFO,
    database_url: DatabaseUrl = None,
    worker_processes: WorkerProcesses = None,
) -> None:
    """Run the delivery worker alone, without the API (on PostgreSQL, as many as you like)."""
    settings = _with_processes(
        Settings.from_env(db_path=db, **_database(database_url)), worker_processes
    ).replace(api_processes=1)  # HOOKD_API_PROCESSES is for the commands that serve the API
    server.run_server(
        settings, run_api=False, console=Console(highlight=False), log_level=log_level.value
    )


def _database(url: str | None) -> dict[str, Any]:
    """Settings overrides for --database-url (which typer already read from the environment)."""
    return {} if url is None else {"database_url": url}


def _with_processes(settings: Settings, processes: int | None) -> Settings:
    """--worker-processes (which typer already read from the environment)."""
    if processes is None:
        return settings
    return settings.replace(worker=dataclasses.replace(settings.worker, processes=processes))


def _serve(
    db: Path,
    host: str,
    port: int,
    log_level: LogLevel,
    access_log: bool,
    *,
    run_worker: bool,
    database_url: str | None = None,
    worker_processes: int | None = None,
    api_processes: int | None = None,
) -> None:
    overrides: dict[str, Any] = {} if api_processes is None else {"api_processes": api_processes}
    settings = _with_processes(
        Settings.from_env(db_path=db, host=host, port=port, **_database(database_url), **overrides),
        worker_processes,
    )
    server.run_server(
        settings,
        run_worker=run_worker,
        console=Console(highlight=False),
        log_level=log_level.value,
        access_log=access_log,
    )


def migrate(db: Db = DEFAULT_DB, database_url: DatabaseUrl = None) -> None:
    """Create the database or bring its schema up to date."""
    settings = Settings.from_env(db_path=db, **_database(database_url))
    version = server.migrate_database(settings)
    where = settings.db_path if settings.database_url is None else settings.database_label()
    common.success(f"{where} is at schema version {version}")


def listen(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 9000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="Verify signatures with this whsec_ secret (repeat during a rotation).",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        int, typer.Option(min=200, max=599, help="Status to answer valid requests with.")
    ] = 204,
) -> None:
    """Receive webhooks here: verify them and print each one (a local test receiver)."""
    secrets = tuple(secret or ())
    for value in secrets:
        signing.decode_secret(value)  # a malformed secret fails now, as a usage error
    config = receiver.ListenConfig(host=host, port=port, secrets=secrets, status=status)
    console = Console(highlight=False)

    def ready(url: str) -> None:
        verified = "signatures verified" if secrets else "signatures not checked (no --secret)"
        console.print(
            Text.assemble(("Listening on ", "bold"), (url, "bold cyan"), (f" · {verified}", "dim"))
        )
        console.print(
            Text(f"register it: hookd endpoints add {url} --events '*'", style="dim"),
            soft_wrap=True,
        )
        console.print(
            Text(
                "(hookd refuses local addresses unless HOOKD_ALLOW_PRIVATE_NETWORKS allows them, "
                "e.g. 127.0.0.0/8)",
                style="dim",
            ),
            soft_wrap=True,
        )

    try:
        run_until_stopped(receiver.run(config, console, ready=ready))
    except OSError as exc:
        common.fail(
            f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}"
        )


def run_until_stopped(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` until it ends or SIGINT/SIGTERM arrives (then cancel it, and return)."""

    async def main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
