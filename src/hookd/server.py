"""``hookd serve`` and ``hookd api``: the HTTP API, and the delivery worker, in one process.

    bind the port ──► open the engine (store, worker) ──► make sure an admin key exists
        ──► uvicorn serves the API ──► SIGINT/SIGTERM: uvicorn stops taking requests and lets
        in-flight ones finish ──► engine.close(): the worker stops claiming, lets in-flight
        deliveries finish up to the shutdown grace, and releases the rest

The port is bound and the engine opened before uvicorn starts, so a port or a database in use,
or a wrong HOOKD_SECRET_KEY, surfaces as a `ConfigError` with a clear message, not as a
traceback from inside the ASGI lifespan. A stop signal exits with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging.config
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
import uvicorn.config
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from hookd import __version__, credentials
from hookd.config import Settings
from hookd.domain import errors
from hookd.engine import Engine
from hookd.store.sqlite import SqliteStore
from hookd.store.sqlite import store as sqlite_store

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: The cyclic garbage collector's thresholds in a serving process (Python's: 700, 10, 10). The
#: hot paths allocate a few objects per delivery or request, nearly all freed by reference
#: counting; collecting every 700 allocations spent about 6% of the CPU for nothing
#: (`bench/suite.py`, e2e-sqlite). Garbage in cycles waits a little longer (at most 50,000
#: allocations for the youngest generation).
GC_THRESHOLDS = (50_000, 50, 1000)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_server(
    settings: Settings,
    *,
    run_api: bool = True,
    run_worker: bool = True,
    console: Console,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully and return.

    Raises `errors.ConfigError` when the server cannot start (port or database in use, wrong key).
    `run_api=False` runs the worker alone (for PostgreSQL, where API and workers scale apart).
    """
    if not (run_api or run_worker):
        raise ValueError("nothing to run: run_api and run_worker are both False")
    if log_level not in LOG_LEVELS:
        raise errors.ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    logging.config.dictConfig(log_config(log_level))
    stop = _StopSignal()
    with stop.installed(), asyncio.Runner(loop_factory=loop_factory()) as runner:
        if run_api:
            runner.run(_serve_api(settings, stop, console, run_worker, log_level, access_log))
        else:
            runner.run(_serve_worker(settings, stop, console))


async def _serve_api(
    settings: Settings,
    stop: _StopSignal,
    console: Console,
    run_worker: bool,
    log_level: str,
    access_log: bool,
) -> None:
    from hookd import api  # imported here: only the serving commands need FastAPI

    listener = bind(settings.host, settings.port)
    port = listener.getsockname()[1]
    url = f"http://{_host_for_url(settings.host)}:{port}"
    try:
        async with _opened(Engine(settings, run_worker=run_worker)) as engine:
            await announce_key(engine, url, console)
            console.print(_startup_line(url, settings, worker=run_worker), soft_wrap=True)
            config = uvicorn.Config(
                api.create_app(engine, manage_engine=False),
                host=settings.host,
                port=port,
                log_level=log_level,
                log_config=None,  # configured by run_server, before the engine starts
                # httptools (C) parses HTTP/1.1 several times faster than h11; a dependency
                http="httptools",
                access_log=access_log,
                lifespan="on",
                timeout_graceful_shutdown=int(settings.worker.shutdown_grace + 5),
                server_header=False,
            )
            server = uvicorn.Server(config)
            tune_gc()
            if not stop.requested:  # a signal during start-up: stop before serving
                stop.server = server
                await server.serve(sockets=[listener])
                stop.server = None
            if run_worker:
                grace = settings.worker.shutdown_grace
                console.print(
                    Text(f"finishing in-flight deliveries (up to {grace:g} s)…", style="dim")
                )
    finally:
        listener.close()


async def _serve_worker(settings: Settings, stop: _StopSignal, console: Console) -> None:
    async with _opened(Engine(settings, run_worker=True)):
        tune_gc()
        console.print(
            Text.assemble(
                ("hookd worker ", "bold"),
                (__version__, "dim"),
                f" · database {settings.database_label()}{_processes(settings)}",
            ),
            soft_wrap=True,
        )
        await stop.wait()
        grace = settings.worker.shutdown_grace
        console.print(Text(f"finishing in-flight deliveries (up to {grace:g} s)…", style="dim"))


@contextlib.asynccontextmanager
async def _opened(engine: Engine) -> AsyncIterator[Engine]:
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


async def announce_key(engine: Engine, url: str, console: Console) -> None:
    """Make sure an admin key exists; show a new one once; save the key for the CLI here."""
    generated = await engine.bootstrap_admin_key()
    configured = engine.settings.api_key.reveal() if engine.settings.api_key else None
    key = generated or configured
    saved: str | None = None
    if key is not None:
        try:
            saved = str(credentials.save(url, key))
        except errors.ConfigError as exc:
            console.print(Text(f"could not save the API key for the CLI: {exc}", style="yellow"))
    if generated is not None:
        body = Text.assemble(
            ("Admin API key (shown once): ", "bold"),
            (generated, "bold green"),
            "\n",
            f"saved for the CLI in {saved}" if saved else "store it now: it is not shown again",
        )
        console.print(Panel(body, title="hookd", border_style="green", expand=False))
    elif configured is not None and saved:
        console.print(Text(f"HOOKD_API_KEY saved for the CLI in {saved}", style="dim"))
    elif key is None and _saved_key(url) is None:
        hint = (
            f"no API key saved for {url} in {credentials.credentials_path()}: give client "
            "commands --api-key or HOOKD_API_KEY (the admin key was shown at the first start)"
        )
        console.print(Text(hint, style="yellow"), soft_wrap=True)


def _saved_key(url: str) -> str | None:
    try:
        return credentials.load(url)
    except errors.ConfigError:
        return None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; `errors.ConfigError` when the address is taken or not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise errors.ConfigError(
            f"cannot listen on {_host_for_url(host)}:{port}: {reason}"
        ) from None


def migrate_database(settings: Settings) -> int:
    """Open the database (which applies pending migrations), close it; the schema version."""
    if settings.database_url is not None:
        return asyncio.run(_migrate_postgres(settings))

    async def run() -> int:
        store = SqliteStore(
            settings.db_path, settings.load_secret_box(), synchronous=settings.sqlite_synchronous
        )
        await store.open()
        try:
            return await asyncio.to_thread(_schema_version, settings)
        finally:
            await store.close()

    return asyncio.run(run())


async def _migrate_postgres(settings: Settings) -> int:
    from hookd.store.postgres import PostgresStore  # here: SQLite users never load asyncpg

    store = PostgresStore.from_settings(settings)
    await store.open()
    try:
        return await store.schema_version()
    finally:
        await store.close()


def _schema_version(settings: Settings) -> int:
    # the store has migrated already; `migrate` on an up-to-date database only reads the version
    with contextlib.closing(sqlite3.connect(settings.db_path, isolation_level=None)) as conn:
        return sqlite_store.migrate(conn)


def tune_gc() -> None:
    """Once a serving process has started: what it holds for its lifetime (modules, the app,
    the engine) leaves the collector's view (`gc.freeze`), and collections come less often
    (`GC_THRESHOLDS`)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, with hookd's own loggers printed the same way."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    hookd_level = "DEBUG" if level == "trace" else level.upper()
    config["loggers"]["hookd"] = {"handlers": ["default"], "level": hookd_level, "propagate": False}
    return config


def _startup_line(url: str, settings: Settings, *, worker: bool) -> Text:
    return Text.assemble(
        ("hookd ", "bold"),
        (__version__, "dim"),
        " listening on ",
        (url, "bold cyan"),
        f" · database {settings.database_label()} · worker ",
        ("on", "green") if worker else ("off", "yellow"),
        _processes(settings) if worker else "",
        (" · Ctrl-C to stop", "dim"),
    )


def _processes(settings: Settings) -> str:
    count = settings.worker.processes
    return f" ({count} processes)" if count > 1 else ""


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # a dependency on every platform but Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


class _StopSignal:
    """SIGINT/SIGTERM as a request to stop gracefully, whatever phase the process is in.

    While uvicorn serves, its own handlers are in place and it re-raises the signal when done;
    ours then takes it (instead of the default, which would kill the process with status 143).
    """

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle(self, sig: int, frame: FrameType | None) -> None:
        if self.requested:
            return
        self.requested = True
        if self.server is not None:
            self.server.handle_exit(sig, frame)
        if self._event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if not self.requested:
            await self._event.wait()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; the caller stops us another way
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
