"""A delivery worker process started by `hookd serve` / `hookd worker` (hookd.delivery.processes).

`python -m hookd.delivery.helper` reads its settings from stdin, runs one worker over the same
database as the process that started it, and stops when stdin closes: SIGINT and SIGTERM are
ignored (the owner stops it in order; SIGKILL still works). Not a command for people: the
process that starts it speaks its protocol (hookd.processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import BinaryIO

from hookd import server
from hookd.delivery.processes import WAKE, encode_report
from hookd.engine import Engine, default_store
from hookd.processes import HelperPayload, start_helper, stdin_reader

log = logging.getLogger("hookd.worker.processes")

#: How often the worker's counts go to the process serving /metrics (seconds).
REPORT_INTERVAL = 1.0


def main() -> int:
    started = start_helper("worker process")
    if started is None:
        return 2
    payload, out = started
    with asyncio.Runner(loop_factory=server.loop_factory()) as runner:
        runner.run(_run(payload, out))
    return 0


async def _run(payload: HelperPayload, out: BinaryIO) -> None:
    settings = payload.settings
    stop = asyncio.Event()
    engine = Engine(settings, store=default_store(settings, helper=True))
    await engine.open()
    server.tune_gc()
    tasks: list[asyncio.Task[None]] = []
    try:
        reader = await stdin_reader()
        assert engine.worker is not None  # an Engine runs a worker unless told not to
        out.write(encode_report({"ready": os.getpid(), "worker_id": engine.worker.id}))
        tasks.append(asyncio.create_task(_listen(reader, engine, stop)))
        tasks.append(asyncio.create_task(_report(engine, out, stop)))
        await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.close()
    _send_counts(engine, out)  # what the last deliveries counted


async def _listen(reader: asyncio.StreamReader, engine: Engine, stop: asyncio.Event) -> None:
    """A wake-up byte: claim now. End of file: the owner is stopping, or gone."""
    while True:
        data = await reader.read(4096)
        if not data:
            log.info("worker process %d: stopping", os.getpid())
            stop.set()
            return
        if WAKE in data:
            engine.notify()


async def _report(engine: Engine, out: BinaryIO, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_INTERVAL)
        if not stop.is_set():
            _send_counts(engine, out)


def _send_counts(engine: Engine, out: BinaryIO) -> None:
    counts = engine.counters.take()
    if counts is not None:
        with contextlib.suppress(OSError):  # the owner is gone: nobody to count for
            out.write(encode_report({"counts": counts}))


if __name__ == "__main__":
    sys.exit(main())
