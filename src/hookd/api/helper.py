"""An API process started by `hookd serve` / `hookd api` (hookd.api.processes).

`python -m hookd.api.helper` reads its settings from stdin, serves the API on the listening
socket it inherited, over the same database as the process that started it (no worker), and
stops when stdin closes: it stops taking connections, lets in-flight requests finish, closes
the engine, sends its last counts and exits. SIGINT and SIGTERM are ignored (the owner stops it
in order; SIGKILL still works). Not a command for people: the process that starts it speaks its
protocol (hookd.processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import BinaryIO

import orjson
import uvicorn

from hookd import server
from hookd.api.processes import OwnerLink
from hookd.engine import Engine, default_store
from hookd.processes import HelperPayload, start_helper, stdin_reader

log = logging.getLogger("hookd.api.processes")

#: How often the counts go to the owner (seconds); a scrape asks for them at once.
REPORT_INTERVAL = 1.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the owner stops this process (stdin's end)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main() -> int:
    started = start_helper("API process")
    if started is None:
        return 2
    payload, out = started
    with asyncio.Runner(loop_factory=server.loop_factory()) as runner:
        return runner.run(_run(payload, out))


async def _run(payload: HelperPayload, out: BinaryIO) -> int:
    from hookd import api  # here: the supervisor's side never needs FastAPI

    settings = payload.settings
    if payload.listen_fd is None:
        print("hookd API process: no listening socket", file=sys.stderr)
        return 2
    listener = socket.socket(fileno=payload.listen_fd)
    engine = Engine(settings, store=default_store(settings, helper=True), run_worker=False)
    await engine.open()
    link = OwnerLink(out, engine.counters, wake=payload.wake_owner)
    engine.api_peers = link
    tasks: list[asyncio.Task[None]] = []
    started = asyncio.Event()

    async def on_startup(_: Engine) -> None:
        started.set()

    try:
        config = server.uvicorn_config(
            api.create_app(engine, manage_engine=False, on_startup=on_startup),
            settings,
            port=listener.getsockname()[1],
            log_level=logging.getLevelName(payload.log_level).lower(),
            access_log=payload.access_log,
        )
        uvicorn_server = _Server(config)
        serving = asyncio.create_task(uvicorn_server.serve(sockets=[listener]))
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if serving.done():
            await serving
            return 1
        server.tune_gc()
        reader = await stdin_reader()
        link.send({"ready": os.getpid()})
        tasks.append(asyncio.create_task(_listen(reader, link, uvicorn_server)))
        tasks.append(asyncio.create_task(_report(link)))
        await serving
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        link.close()
        await engine.close()
    link.report()  # what the last requests counted
    return 0


async def _listen(reader: asyncio.StreamReader, link: OwnerLink, serving: uvicorn.Server) -> None:
    """The owner's lines; end of file: the owner is stopping, or gone."""
    while True:
        try:
            line = await reader.readline()
        except (ValueError, OSError) as exc:
            log.error("API process %d: unreadable line from the owner: %s", os.getpid(), exc)
            line = b""
        if not line:
            log.info("API process %d: stopping", os.getpid())
            serving.should_exit = True
            link.close()
            return
        try:
            message = orjson.loads(line)
            if isinstance(message, dict):
                link.on_line(message)
        except (ValueError, TypeError, KeyError) as exc:
            log.error("API process %d: malformed line ignored: %s", os.getpid(), exc)


async def _report(link: OwnerLink) -> None:
    while True:
        await asyncio.sleep(REPORT_INTERVAL)
        link.report()


if __name__ == "__main__":
    sys.exit(main())
