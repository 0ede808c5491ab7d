"""More API processes beside this one, serving the same port: one process per core.

`hookd serve` and `hookd api` with `HOOKD_API_PROCESSES=N` (`--api-processes N`) serve the API
themselves and start N-1 more processes (`python -m hookd.api.helper`), supervised as every
helper is (hookd.processes). Each runs its own uvicorn and engine (no worker) over the same
database (on SQLite, the owner's database in its shared mode) and serves a listening socket of
its own on the same port, which the owner binds (SO_REUSEPORT) and hands over (`pass_fds`) when
it starts it: the kernel spreads new connections evenly over the group's listening sockets (by
a hash of their addresses), and a helper never binds anything itself. The socket only listens
once the helper serves (uvicorn calls listen), so no connection waits for a helper to start.
The owner keeps no copy: when a helper dies its socket closes with it, and new connections go
to the others until it is back.

Why not one socket inherited by every process: each process's event loop then accepts every
connection waiting at the moment it wakes, so a burst of new connections (a client's pool
opening) often lands entirely on one process; measured here, 64 connections went 45,720 to
0 events in one run. SO_REUSEPORT spread them evenly in every run (bench/README.md).

    owner ──stdin──► API process:  the settings (once, pickled, with the socket's descriptor),
                                   then JSON lines: {"flush": n} (send your counts now),
                                   {"answer": n, ...} (to its question n)
          ◄─stdout── API process:  JSON lines: {"ready": pid}; {"counts": …} every second and
                                   with {"flushed": n}; {"wake": 1} (it published: something
                                   may be due, on SQLite); {"ask": n, "what": "metrics" |
                                   "ready", "counts": …}

`/metrics` shows the whole service wherever it is scraped: the owner holds the only merged
counts (its own, its worker processes', its API processes'); a scrape of the owner first asks
every API process for its latest counts, and a scrape of an API process is answered with the
owner's rendering (the API process's counts travel with the question). Every counter comes
from one place, so none ever goes down between two scrapes, whichever processes they reach.
`/readyz` of an API process answers what the owner's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, BinaryIO

from hookd.config import Settings
from hookd.domain import errors
from hookd.engine import Engine
from hookd.metrics import DeliveryCounters
from hookd.processes import Helper, HelperPayload, ProcessGroup, encode_line
from hookd.store.sqlite.store import SharedStamp, types_stamp_path

log = logging.getLogger("hookd.api.processes")

#: The module an API process runs.
HELPER_MODULE = "hookd.api.helper"
#: How long a scrape of the owner waits for the API processes' latest counts (seconds); one
#: that does not answer in time is shown with what it reported before.
FLUSH_TIMEOUT = 1.0
#: How long an API process waits for its owner's answer (seconds).
ASK_TIMEOUT = 5.0


class ApiProcesses(ProcessGroup):
    """The owner's side: start, watch and stop `count` API processes on `listener`; take in
    their counts and wake-ups; answer their questions. The engine's `api_peers`."""

    kind = "API process"

    def __init__(
        self,
        settings: Settings,
        count: int,
        engine: Engine,
        listener: socket.socket,
        *,
        access_log: bool = False,
    ) -> None:
        # an API process serves; it starts no processes and runs no worker of its own
        settings = settings.replace(
            worker=dataclasses.replace(settings.worker, processes=1), api_processes=1
        )
        super().__init__(settings, count, HELPER_MODULE)
        self._engine = engine
        self._address = listener.getsockname()[:2]
        self._family = listener.family
        self._sockets: dict[int, socket.socket] = {}  # bound for a helper being started
        self._access_log = access_log
        # on SQLite the owner's worker (and its worker processes) must hear of their publishes
        self._wake = settings.database_url is None and engine.worker is not None
        self._published = {h.index: 0 for h in self.helpers}  # over every run of each
        self._flushes: dict[tuple[int, int], asyncio.Future[None]] = {}
        self._flush_seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: renders the owner's exposition (set by the app that serves /metrics here)
        self.render: Callable[[], Awaitable[bytes]] | None = None

    # the group ---------------------------------------------------------------------------------
    def payload(self, helper: Helper) -> HelperPayload:
        # bound, not listening: the kernel gives it connections only once the helper listens,
        # when it is ready to serve them (uvicorn calls listen), not while it starts
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self._address)
        except OSError as exc:
            sock.close()
            raise errors.ConfigError(f"{self.kind} {helper.index}: cannot bind: {exc}") from None
        self._sockets[helper.index] = sock
        return HelperPayload(
            self.settings,
            helper.index,
            logging.getLogger("hookd").getEffectiveLevel(),
            listen_fd=sock.fileno(),
            access_log=self._access_log,
            wake_owner=self._wake,
        )

    def pass_fds(self, helper: Helper) -> tuple[int, ...]:
        return (self._sockets[helper.index].fileno(),)

    def spawned(self, helper: Helper) -> None:
        sock = self._sockets.pop(helper.index, None)
        if sock is not None:
            sock.close()  # the helper's own now: it closes when the helper ends

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_message(self, helper: Helper, message: Mapping[str, Any]) -> None:
        counts = message.get("counts")
        if isinstance(counts, Mapping):
            before = self._engine.counters.published
            self._engine.counters.merge(counts)
            self._published[helper.index] += self._engine.counters.published - before
        if "flushed" in message:
            waiter = self._flushes.pop((helper.index, int(message["flushed"])), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if message.get("wake"):
            self._engine.notify()
        if "ask" in message:
            task = asyncio.create_task(self._answer(helper, int(message["ask"]), message["what"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def on_exit(self, helper: Helper) -> None:
        for (index, seq), waiter in list(self._flushes.items()):
            if index == helper.index:
                del self._flushes[(index, seq)]
                if not waiter.done():
                    waiter.set_result(None)
        # it may have died between committing an event type and telling the others
        if self.settings.database_url is None:
            with contextlib.suppress(OSError):
                stamp = SharedStamp(types_stamp_path(self.settings.db_path))
                stamp.touch()
                stamp.close()

    # ApiPeers ----------------------------------------------------------------------------------
    def notify(self) -> None:
        """The owner published: its engine has woken its own workers already."""

    async def not_ready_reason(self) -> str | None:
        return self.down_reason()

    async def metrics(self, local: Callable[[], Awaitable[bytes]]) -> bytes:
        await self.gather_counts()
        return await local()

    # ---------------------------------------------------------------------------------------------
    def published(self) -> dict[int, int]:
        """Events each API process published (by index, 1..count), as reported so far."""
        return dict(self._published)

    async def gather_counts(self, *, exclude: int | None = None) -> None:
        """Ask every running API process (but `exclude`) for its counts now; wait for them up to
        `FLUSH_TIMEOUT`."""
        self._flush_seq += 1
        seq = self._flush_seq
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []
        for helper in self.helpers:
            if helper.index == exclude or not helper.ready:
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._flushes[(helper.index, seq)] = waiter
            if helper.send(encode_line({"flush": seq})):
                waiting.append(waiter)
            else:
                del self._flushes[(helper.index, seq)]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=FLUSH_TIMEOUT)
            for waiter in late:
                waiter.cancel()
            for key in [k for k, w in self._flushes.items() if w in late]:
                del self._flushes[key]

    async def _answer(self, helper: Helper, ask: int, what: object) -> None:
        answer: dict[str, Any] = {"answer": ask}
        try:
            if what == "metrics":
                if self.render is None:
                    raise errors.StoreUnavailable("the owner does not serve metrics yet")
                await self.gather_counts(exclude=helper.index)
                answer["text"] = (await self.render()).decode()
            elif what == "ready":
                answer["reason"] = await self._engine.not_ready_reason()
            else:
                answer["error"] = f"unknown question {what!r}"
        except errors.HookdError as exc:
            answer["error"] = str(exc)
        helper.send(encode_line(answer))


class OwnerLink:
    """An API process's side: its counts, wake-ups and questions go to the owner over stdout;
    the owner's answers and requests come over stdin (`on_line`). The engine's `api_peers`."""

    def __init__(self, out: BinaryIO, counters: DeliveryCounters, *, wake: bool) -> None:
        self._out = out
        self._counters = counters
        self._wake = wake
        self._wake_pending = False
        self._asks: dict[int, asyncio.Future[Mapping[str, Any]]] = {}
        self._ask_seq = 0

    def send(self, message: Mapping[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the owner is gone: stdin's end of file stops us
            self._out.write(encode_line(message))

    def report(self) -> None:
        """What was counted since the last report, if anything."""
        counts = self._counters.take()
        if counts is not None:
            self.send({"counts": counts})

    def on_line(self, message: Mapping[str, Any]) -> None:
        if "flush" in message:
            self.send({"counts": self._counters.take(), "flushed": int(message["flush"])})
        if "answer" in message:
            waiter = self._asks.pop(int(message["answer"]), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def close(self) -> None:
        for waiter in self._asks.values():
            if not waiter.done():
                waiter.set_exception(errors.StoreUnavailable("the owner process is gone"))
        self._asks.clear()

    async def ask(self, what: str) -> Mapping[str, Any]:
        """The owner's answer to `what` (this process's counts go with the question);
        `errors.StoreUnavailable` (a 503) when it does not answer in time."""
        self._ask_seq += 1
        seq = self._ask_seq
        waiter: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._asks[seq] = waiter
        self.send({"ask": seq, "what": what, "counts": self._counters.take()})
        try:
            answer = await asyncio.wait_for(waiter, ASK_TIMEOUT)
        except TimeoutError:
            raise errors.StoreUnavailable("the owner process does not answer") from None
        finally:
            self._asks.pop(seq, None)
        if "error" in answer:
            raise errors.StoreUnavailable(str(answer["error"]))
        return answer

    # ApiPeers ----------------------------------------------------------------------------------
    def notify(self) -> None:
        """This process published: the owner wakes its workers (once per loop iteration)."""
        if self._wake and not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        self.send({"wake": 1})

    async def not_ready_reason(self) -> str | None:
        try:
            answer = await self.ask("ready")
        except errors.StoreUnavailable as exc:
            return str(exc)
        reason = answer.get("reason")
        return None if reason is None else str(reason)

    async def metrics(self, local: Callable[[], Awaitable[bytes]]) -> bytes:
        answer = await self.ask("metrics")
        return str(answer["text"]).encode()
