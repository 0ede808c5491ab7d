"""Group commit on asyncio: many concurrent callers' writes share one transaction.

Each caller submits an item and awaits its result. A few drain tasks each take every item waiting
at that moment (up to `max_items`), hand the list to `run`, which writes them in one transaction
and returns one result (or exception) per item, and settle each caller's future. While one drain
task waits for its commit, another gathers the next batch, so commits overlap. The same idea as
the SQLite writer thread (store/sqlite/writer.py), without the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741  (an item)
R = TypeVar("R")  # its result


class GroupCommit(Generic[I, R]):
    def __init__(
        self,
        run: Callable[[list[I]], Awaitable[Sequence[R | BaseException]]],
        *,
        size: Callable[[I], int] = lambda _item: 1,
        max_items: int = 1024,
        writers: int = 2,
        name: str = "hookd-group-commit",
    ) -> None:
        self._run = run
        self._size = size
        self._max_items = max_items
        self._writers = writers
        self._name = name
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[R]] | None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._drain(), name=f"{self._name}-{i}")
            for i in range(self._writers)
        ]

    async def stop(self) -> None:
        """Write everything submitted so far, then stop the drain tasks."""
        if self._queue is None:
            return
        queue, self._queue = self._queue, None
        for _ in self._tasks:
            queue.put_nowait(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, item: I) -> R:
        if self._queue is None:
            raise RuntimeError(f"{self._name} is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _drain(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            size = self._size(first[0])
            stop = False
            while size < self._max_items and not queue.empty():
                job = queue.get_nowait()
                if job is None:
                    stop = True
                    break
                batch.append(job)
                size += self._size(job[0])
            await self._write(batch)
            if stop:
                return

    async def _write(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        outcomes: Sequence[R | BaseException]
        try:
            outcomes = await self._run([item for item, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up (cancelled); the write stands
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
