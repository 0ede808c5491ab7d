"""Helper processes beside a serving process: one per core, started, watched and stopped by it.

Python runs one thread at a time per process, so a `hookd serve` uses more than one core by
starting helper processes: delivery workers (`HOOKD_WORKER_PROCESSES`, hookd.delivery.processes)
and API servers on the same port (`HOOKD_API_PROCESSES`, hookd.api.processes). Both kinds are
supervised the same way, by a `ProcessGroup`:

    owner ──stdin──► helper:  the settings (once, pickled, length-prefixed), then what the kind
                              of helper understands (a wake-up byte; JSON lines)
          ◄─stdout── helper:  one JSON object per line: {"ready": pid} once it serves, then what
                              it reports (its counts for /metrics, questions to the owner)

* The settings travel over the pipe, never in the environment or on the command line: they hold
  the encryption key. A listening socket is handed over (`pass_fds`): a helper binds nothing.
* A helper stops gracefully when its stdin closes: when the owner stops it, and when the owner
  dies, however it dies. It ignores SIGINT and SIGTERM (a service manager's signal to the whole
  group reaches the owner, which stops its helpers in order).
* A helper that exits on its own is started again after a pause that doubles while it keeps
  failing (`RESTART_DELAY` up to `MAX_RESTART_DELAY`); until it is back, the owner's `/readyz`
  is not ready.
* `stop` closes every helper's stdin and waits for them (killing one that outstays the grace).

The helper side of the protocol (`read_payload`, `start_helper`, `stdin_reader`) is here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import logging.config
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO

import orjson

from hookd.config import Settings
from hookd.domain import errors

log = logging.getLogger("hookd.processes")

#: How long a new helper may take to report ready (seconds).
START_TIMEOUT = 60.0
#: The pause before a helper that exited is started again: doubling, up to the most.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: A helper that ran this long before it exited is restarted after the shortest pause.
HEALTHY_RUN = 60.0
#: The largest line a helper may send (e.g. its counts of up to every capped endpoint).
MAX_LINE = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class HelperPayload:
    """What a helper process is started with (pickled over its stdin)."""

    settings: Settings
    index: int
    log_level: int
    #: an API helper: the inherited listening socket's descriptor (the same number as here)
    listen_fd: int | None = None
    #: an API helper: log every request (`--access-log`)
    access_log: bool = False
    #: an API helper: tell the owner when something may be due (its worker is woken)
    wake_owner: bool = False


def encode_payload(payload: HelperPayload) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(data)) + data


def encode_line(message: Mapping[str, Any]) -> bytes:
    """One line of the protocol (either direction after the settings)."""
    return orjson.dumps(message) + b"\n"


class Helper:
    """One helper process and what is known of it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        self.started_at = 0.0
        self.reader: asyncio.Task[None] | None = None
        #: what its "ready" line said (its pid, and what its kind adds)
        self.info: Mapping[str, Any] = {}

    @property
    def alive(self) -> bool:
        return _alive(self.process)

    def send(self, data: bytes) -> bool:
        """Write to its stdin; False when it is not running (its watcher sees that)."""
        process = self.process
        if process is None or process.stdin is None or not self.alive:
            return False
        try:
            process.stdin.write(data)
        except (OSError, RuntimeError):  # it is exiting
            return False
        return True


class ProcessGroup:
    """Start, watch and stop `count` helper processes running `module`.

    A subclass says what a helper is started with (`payload`, `pass_fds`) and what its lines
    mean (`on_message`)."""

    #: what a helper is called in logs and in /readyz
    kind = "helper process"

    def __init__(self, settings: Settings, count: int, module: str) -> None:
        self.settings = settings
        self._module = module
        self._helpers = [Helper(i + 1) for i in range(count)]
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    # what a subclass says ----------------------------------------------------------------------
    def payload(self, helper: Helper) -> HelperPayload:
        level = logging.getLogger("hookd").getEffectiveLevel()
        return HelperPayload(self.settings, helper.index, level)

    def pass_fds(self, helper: Helper) -> tuple[int, ...]:
        """Descriptors the helper inherits (as the same numbers)."""
        return ()

    def spawned(self, helper: Helper) -> None:
        """A helper's process was started (or failed to be): `pass_fds` may be closed here."""

    def on_message(self, helper: Helper, message: Mapping[str, Any]) -> None:
        """A line from a running helper (not its "ready"); malformed content raises ValueError,
        TypeError or KeyError, which is logged and ignored."""

    def on_exit(self, helper: Helper) -> None:
        """A helper's process ended (its last lines have been read)."""

    async def lost(self, helper: Helper) -> None:
        """A helper's process ended while it should have been running (it crashed or was
        killed), before it is started again; an exception is logged and ignored."""

    # control -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every helper and wait until each reports ready; `errors.ConfigError` when one
        cannot start (the others are stopped then)."""
        try:
            await asyncio.gather(*(self._spawn(h) for h in self._helpers))
        except BaseException:
            await self.stop()
            raise
        self._watchers = [
            asyncio.create_task(self._watch(h), name=f"hookd-{self._module}-{h.index}")
            for h in self._helpers
        ]

    def begin_stop(self) -> None:
        """Close every helper's stdin now (it finishes what it is doing and exits); `stop`
        waits for them."""
        self._stopping = True
        for helper in self._helpers:
            process = helper.process
            if process is not None and process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()

    async def stop(self) -> None:
        """Close every helper's stdin (it finishes what it is doing, up to the shutdown grace),
        wait for them to exit; kill one that doesn't."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        await asyncio.gather(*(self._stop_one(h) for h in self._helpers))

    # state -------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self._helpers)

    @property
    def helpers(self) -> list[Helper]:
        return list(self._helpers)

    @property
    def running(self) -> int:
        """Helpers that are up and ready."""
        return sum(1 for h in self._helpers if h.ready and h.alive)

    def pids(self) -> dict[int, int]:
        """The pid of every running helper, by index."""
        return {
            h.index: h.process.pid
            for h in self._helpers
            if h.process is not None and h.ready and h.alive
        }

    def down_reason(self) -> str | None:
        down = [h.index for h in self._helpers if not (h.ready and h.alive)]
        if down:
            return f"{self.kind} {', '.join(map(str, down))} of {self.count + 1} is not running"
        return None

    # one helper --------------------------------------------------------------------------------
    async def _spawn(self, helper: Helper) -> None:
        payload = self.payload(helper)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self._module,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MAX_LINE,
                pass_fds=self.pass_fds(helper),
            )
        finally:
            self.spawned(helper)
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
            log.error("%s %d did not start: %s", self.kind, helper.index, exc)
        if not (isinstance(message, dict) and message.get("ready") == process.pid):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
            raise errors.ConfigError(
                f"{self.kind} {helper.index} did not start (exit status {code}); its log is above"
            )
        helper.ready = True
        helper.info = message
        helper.reader = asyncio.create_task(self._read(helper, process))
        log.info("%s %d started (pid %d)", self.kind, helper.index, process.pid)

    async def _read(self, helper: Helper, process: asyncio.subprocess.Process) -> None:
        """Take in a helper's lines until its stdout closes."""
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except (ValueError, OSError) as exc:  # a line past MAX_LINE, a broken pipe
                log.error("%s %d: unreadable report: %s", self.kind, helper.index, exc)
                return
            if not line:
                return
            try:
                message = orjson.loads(line)
                if not isinstance(message, dict):
                    raise TypeError(f"not an object: {message!r}")
                self.on_message(helper, message)
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s %d: malformed report ignored: %s", self.kind, helper.index, exc)

    async def _watch(self, helper: Helper) -> None:
        """Start a helper again when it exits while it should be running."""
        delay = RESTART_DELAY
        while not self._stopping:
            process = helper.process
            assert process is not None
            code = await process.wait()
            if helper.reader is not None:
                await helper.reader  # its last lines, if it sent them
            helper.ready = False
            self.on_exit(helper)
            if self._stopping:
                return
            try:
                await self.lost(helper)
            except Exception:
                log.exception("%s %d: cleaning up after it failed", self.kind, helper.index)
            if time.monotonic() - helper.started_at > HEALTHY_RUN:
                delay = RESTART_DELAY
            log.error(
                "%s %d (pid %d) exited with status %s; starting it again in %.0f s",
                self.kind,
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

    async def _stop_one(self, helper: Helper) -> None:
        process = helper.process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()  # EOF: finish and exit
        grace = self.settings.worker.shutdown_grace + 15.0
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.error("%s %d did not stop within %.0f s: killed", self.kind, helper.index, grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if helper.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await helper.reader
        if helper.ready:
            helper.ready = False
            self.on_exit(helper)


def _alive(process: asyncio.subprocess.Process | None) -> bool:
    return process is not None and process.returncode is None


# the helper's side -------------------------------------------------------------------------------
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


def start_helper(what: str) -> tuple[HelperPayload, BinaryIO] | None:
    """A helper's first steps: its settings from stdin (None, after a message, when there are
    none: a person ran it), logging as the owner's, SIGINT and SIGTERM ignored (the owner stops
    it, by closing its stdin, as part of its own orderly stop; it is not to go first). Returns
    the payload and the report channel (the real stdout; `sys.stdout` becomes stderr, so that
    stray prints never reach the owner)."""
    from hookd import server  # here: the owner's side of this module never needs it

    try:
        payload = read_payload(sys.stdin.buffer)
    except (EOFError, TypeError, pickle.UnpicklingError) as exc:
        print(f"hookd {what}: {exc}; it is started by hookd serve", file=sys.stderr)
        return None
    level = logging.getLevelName(payload.log_level).lower()
    logging.config.dictConfig(server.log_config(level if level in server.LOG_LEVELS else "info"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr
    return payload, out


async def stdin_reader() -> asyncio.StreamReader:
    """The owner's side of the pipe, readable on the event loop (after the settings)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader
