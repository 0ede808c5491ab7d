"""More delivery worker processes beside this one: one process per core.

`hookd serve` and `hookd worker` with `HOOKD_WORKER_PROCESSES=N` (`--worker-processes N`) run
their own worker and start N-1 more processes (`python -m hookd.delivery.helper`), each a
worker over the same database. Python runs one thread at a time per process, so this is how a
worker uses more than one core. On SQLite the owner keeps the database lock; its worker
processes open the database beside it (`SqliteStore(exclusive=False, shared=True)`), and
SQLite's own locking orders their writes. On PostgreSQL they are plain workers.

    owner ──stdin──► worker process:  the settings (once, pickled), then "w": something is due
          ◄─stdout── worker process:  one JSON object per line: {"ready": pid}, then what its
                                      worker counted for /metrics (hookd.metrics: `take`)

A worker process stops (gracefully: in-flight requests finish up to the shutdown grace, the
rest of its leases are released) when its stdin closes: when the owner stops it, and when the
owner dies, however it dies. One that exits on its own is started again, after a pause that
grows while it keeps failing. The settings travel over the pipe, never in the environment or
on the command line, since they hold the encryption key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pickle
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from hookd.config import Settings
from hookd.domain import errors
from hookd.metrics import DeliveryCounters

log = logging.getLogger("hookd.worker.processes")

#: The module a worker process runs.
HELPER_MODULE = "hookd.delivery.helper"
#: How long a new worker process may take to report ready (seconds).
START_TIMEOUT = 60.0
#: The pause before a worker process that exited is started again: doubling, up to the most.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: A worker process that ran this long before it exited is restarted after the shortest pause.
HEALTHY_RUN = 60.0
#: The largest line a worker process may send (its counts of up to every capped endpoint).
MAX_LINE = 1 << 20
#: The wake-up byte.
WAKE = b"w"


@dataclasses.dataclass(frozen=True, slots=True)
class HelperPayload:
    """What a worker process is started with (pickled over its stdin)."""

    settings: Settings
    index: int
    log_level: int


def encode_payload(payload: HelperPayload) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(data)) + data


class _Helper:
    """One worker process and what is known of it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        self.started_at = 0.0
        self.attempts = 0  # attempts it reported, over every run of it
        self.wake_pending = False
        self.reader: asyncio.Task[None] | None = None


class WorkerProcesses:
    """Start, watch, wake and stop `count` worker processes; add their counts to `counters`."""

    def __init__(self, settings: Settings, count: int, counters: DeliveryCounters) -> None:
        # a worker process runs one worker of its own: it starts no processes itself
        self._settings = settings.replace(worker=dataclasses.replace(settings.worker, processes=1))
        self._counters = counters
        self._helpers = [_Helper(i + 1) for i in range(count)]
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    # control -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker process and wait until each reports ready; `errors.ConfigError`
        when one cannot start (the others are stopped then)."""
        try:
            await asyncio.gather(*(self._spawn(h) for h in self._helpers))
        except BaseException:
            await self.stop()
            raise
        self._watchers = [
            asyncio.create_task(self._watch(h), name=f"hookd-worker-process-{h.index}")
            for h in self._helpers
        ]

    async def stop(self) -> None:
        """Close every worker process's stdin (it finishes its in-flight deliveries, up to the
        shutdown grace, and releases the rest), wait for them to exit; kill one that doesn't."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        await asyncio.gather(*(self._stop_one(h) for h in self._helpers))

    def notify(self) -> None:
        """Something may be due now: wake every worker process (once per loop iteration)."""
        for helper in self._helpers:
            if not helper.wake_pending and helper.ready:
                helper.wake_pending = True
                asyncio.get_running_loop().call_soon(self._wake, helper)

    # state -------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self._helpers)

    @property
    def running(self) -> int:
        """Worker processes that are up and ready."""
        return sum(1 for h in self._helpers if h.ready and _alive(h.process))

    def attempts(self) -> dict[int, int]:
        """Attempts each worker process reported (by index, 1..count)."""
        return {h.index: h.attempts for h in self._helpers}

    def not_ready_reason(self) -> str | None:
        down = [h.index for h in self._helpers if not (h.ready and _alive(h.process))]
        if down:
            return f"worker process {', '.join(map(str, down))} of {self.count + 1} is not running"
        return None

    # one worker process ------------------------------------------------------------------------
    async def _spawn(self, helper: _Helper) -> None:
        level = logging.getLogger("hookd").getEffectiveLevel()
        payload = HelperPayload(self._settings, helper.index, level)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            HELPER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=MAX_LINE,
        )
        helper.process = process
        helper.ready = False
        helper.started_at = time.monotonic()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(encode_payload(payload))
        try:
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            message = orjson.loads(line) if line else None
        except (OSError, TimeoutError, orjson.JSONDecodeError) as exc:
            message = None
            log.error("worker process %d did not start: %s", helper.index, exc)
        if not (isinstance(message, dict) and message.get("ready") == process.pid):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
            raise errors.ConfigError(
                f"worker process {helper.index} did not start (exit status {code}); "
                "its log is above"
            )
        helper.ready = True
        helper.reader = asyncio.create_task(self._read(helper, process))
        log.info("worker process %d started (pid %d)", helper.index, process.pid)

    async def _read(self, helper: _Helper, process: asyncio.subprocess.Process) -> None:
        """Take in a worker process's counts until its stdout closes."""
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except (ValueError, OSError) as exc:  # a line past MAX_LINE, a broken pipe
                log.error("worker process %d: unreadable report: %s", helper.index, exc)
                return
            if not line:
                return
            try:
                message = orjson.loads(line)
                if isinstance(message, dict) and isinstance(message.get("counts"), Mapping):
                    helper.attempts += self._counters.merge(message["counts"])
            except (ValueError, TypeError, KeyError) as exc:
                log.error("worker process %d: malformed report ignored: %s", helper.index, exc)

    async def _watch(self, helper: _Helper) -> None:
        """Start a worker process again when it exits while it should be running."""
        delay = RESTART_DELAY
        while not self._stopping:
            process = helper.process
            assert process is not None
            code = await process.wait()
            if helper.reader is not None:
                await helper.reader  # its last counts, if it sent them
            helper.ready = False
            if self._stopping:
                return
            if time.monotonic() - helper.started_at > HEALTHY_RUN:
                delay = RESTART_DELAY
            log.error(
                "worker process %d (pid %d) exited with status %s; starting it again in %.0f s",
                helper.index,
                process.pid,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
            try:
                await self._spawn(helper)
            except (errors.ConfigError, OSError) as exc:
                log.error("%s", exc)
                helper.started_at = time.monotonic()

    def _wake(self, helper: _Helper) -> None:
        helper.wake_pending = False
        process = helper.process
        if process is None or process.stdin is None or not _alive(process):
            return
        with contextlib.suppress(OSError, RuntimeError):  # it is exiting: the watcher sees it
            process.stdin.write(WAKE)

    async def _stop_one(self, helper: _Helper) -> None:
        process = helper.process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()  # EOF: finish and exit
        grace = self._settings.worker.shutdown_grace + 15.0
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.error("worker process %d did not stop within %.0f s: killed", helper.index, grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if helper.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await helper.reader
        helper.ready = False


def _alive(process: asyncio.subprocess.Process | None) -> bool:
    return process is not None and process.returncode is None


def encode_report(message: Mapping[str, Any]) -> bytes:
    """One line of a worker process's stdout."""
    return orjson.dumps(message) + b"\n"
