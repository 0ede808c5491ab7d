"""A delivery worker process started by `hookd serve` / `hookd worker` (hookd.delivery.processes).

`python -m hookd.delivery.helper` reads its settings from stdin, runs one worker over the same
database as the process that started it, and stops when stdin closes: SIGINT and SIGTERM are
ignored (the owner stops it in order; SIGKILL still works). Not a command for people: the
process that starts it speaks its protocol (see processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import pickle
import signal
import struct
import sys
from typing import BinaryIO

from hookd import server
from hookd.delivery.processes import WAKE, HelperPayload, encode_report
from hookd.engine import Engine, default_store

log = logging.getLogger("hookd.worker.processes")

#: How often the worker's counts go to the process serving /metrics (seconds).
REPORT_INTERVAL = 1.0


def read_payload(stream: BinaryIO) -> HelperPayload:
    header = stream.read(4)
    if len(header) != 4:
        raise EOFError("no settings on stdin")
    (size,) = struct.unpack("!I", header)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the settings were cut short")
    # from the process that started this one, over a pipe only the two of them hold
    payload = pickle.loads(data)  # noqa: S301
    if not isinstance(payload, HelperPayload):
        raise TypeError(f"not a HelperPayload: {type(payload).__name__}")
    return payload


def main() -> int:
    try:
        payload = read_payload(sys.stdin.buffer)
    except (EOFError, TypeError, pickle.UnpicklingError) as exc:
        print(f"hookd worker process: {exc}; it is started by hookd serve", file=sys.stderr)
        return 2
    level = logging.getLevelName(payload.log_level).lower()
    logging.config.dictConfig(server.log_config(level if level in server.LOG_LEVELS else "info"))
    # Ctrl-C, or a service manager's SIGTERM to the whole group: the owner stops this process
    # (by closing its stdin) as part of its own orderly stop; it is not to go first
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # stray prints must not reach the report channel
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
        reader = await _stdin_reader()
        out.write(encode_report({"ready": os.getpid()}))
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


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


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
