"""More delivery worker processes beside this one: one process per core.

`hookd serve` and `hookd worker` with `HOOKD_WORKER_PROCESSES=N` (`--worker-processes N`) run
their own worker and start N-1 more processes (`python -m hookd.delivery.helper`), each a
worker over the same database, supervised as every helper process is (hookd.processes). On
SQLite the owner keeps the database lock; its worker processes open the database beside it
(`SqliteStore(exclusive=False, shared=True)`), and SQLite's own locking orders their writes.
On PostgreSQL they are plain workers.

    owner ──stdin──► worker process:  the settings (once, pickled), then "w": something is due
          ◄─stdout── worker process:  one JSON object per line: {"ready": pid, "worker_id": id},
                                      then what its worker counted for /metrics
                                      (hookd.metrics: `take`)

A worker process stops (gracefully: in-flight requests finish up to the shutdown grace, the
rest of its leases are released) when its stdin closes. One that dies instead (a crash, a
SIGKILL) leaves its leases behind: the owner gives them back at once (`release`, with the
worker id it said it had), so what it held is due again now, not when the leases end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hookd.config import Settings
from hookd.metrics import DeliveryCounters
from hookd.processes import Helper, ProcessGroup, encode_line

#: The module a worker process runs.
HELPER_MODULE = "hookd.delivery.helper"
#: The wake-up byte.
WAKE = b"w"

log = logging.getLogger("hookd.worker.processes")


class WorkerProcesses(ProcessGroup):
    """Start, watch, wake and stop `count` worker processes; add their counts to `counters`;
    `release(worker_id)`: give back the leases of one that died (returns how many)."""

    kind = "worker process"

    def __init__(
        self,
        settings: Settings,
        count: int,
        counters: DeliveryCounters,
        release: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        # a worker process runs one worker of its own: it starts no processes itself
        settings = settings.replace(
            worker=dataclasses.replace(settings.worker, processes=1), api_processes=1
        )
        super().__init__(settings, count, HELPER_MODULE)
        self._counters = counters
        self._release = release
        self._attempts = {h.index: 0 for h in self.helpers}  # over every run of each
        self._wake_pending: set[int] = set()

    def on_message(self, helper: Helper, message: Mapping[str, Any]) -> None:
        counts = message.get("counts")
        if isinstance(counts, Mapping):
            self._attempts[helper.index] += self._counters.merge(counts)

    async def lost(self, helper: Helper) -> None:
        worker_id = helper.info.get("worker_id")
        if self._release is None or not isinstance(worker_id, str):
            return
        released = await self._release(worker_id)
        if released:
            log.warning(
                "%s %d died holding %d deliveries: they are due again now",
                self.kind,
                helper.index,
                released,
            )

    def notify(self) -> None:
        """Something may be due now: wake every worker process (once per loop iteration)."""
        for helper in self.helpers:
            if helper.index not in self._wake_pending and helper.ready:
                self._wake_pending.add(helper.index)
                asyncio.get_running_loop().call_soon(self._wake, helper)

    def _wake(self, helper: Helper) -> None:
        self._wake_pending.discard(helper.index)
        helper.send(WAKE)

    def attempts(self) -> dict[int, int]:
        """Attempts each worker process reported (by index, 1..count)."""
        return dict(self._attempts)

    def not_ready_reason(self) -> str | None:
        return self.down_reason()


def encode_report(message: Mapping[str, Any]) -> bytes:
    """One line of a worker process's stdout."""
    return encode_line(message)
