"""Many concurrent callers, one statement: a small async batcher for database round trips.

Each caller `submit`s one item and awaits its own result. Items are collected until a batch
holds `max_items` or the first item has waited `max_delay_s`; then the batch waits for one
of `max_concurrent_writes` write slots, still taking items while it waits (group commit:
the busier the database, the bigger the batches, with no fixed delay when it is idle), and
`write` gets the whole batch and answers one result per item, in order. If `write` raises,
every caller in that batch gets the exception (nothing is half-answered); a caller is never
left waiting: a batch is always started by a timer or by size, and `close` starts what is
still collected.

`key` keeps items that must not share a statement apart (two rows for one delivery in one
`INSERT … ON CONFLICT DO UPDATE` is an error): an item whose key is already in the batch
being collected goes into the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Batch(Generic[T, R]):
    items: list[T] = field(default_factory=list)
    waiters: list[asyncio.Future[R]] = field(default_factory=list)
    keys: set[Hashable] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    started: bool = False  # waiting for a write slot, or being written


class BatchError(RuntimeError):
    """`write` broke its contract (not one result per item)."""


class Batcher(Generic[T, R]):
    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_items: int,
        max_delay_s: float,
        key: Callable[[T], Hashable] | None = None,
        max_concurrent_writes: int = 4,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._write = write
        self._max_items = max_items
        self._max_delay_s = max_delay_s
        self._key = key
        self._collecting: list[_Batch[T, R]] = []
        self._writes = asyncio.Semaphore(max_concurrent_writes)
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: T) -> R:
        # A cancelled caller leaves its item in the batch: it is written all the same (a
        # POST that happened is recorded even if its handler is being torn down).
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Add the item and return its result's future, not waiting for it: for a caller that
        needs the write done but not its answer. An exception nobody retrieves from such a
        future is logged by asyncio, so a `write` used this way should not raise."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        loop = asyncio.get_running_loop()
        key = self._key(item) if self._key is not None else None
        batch = self._batch_for(key)
        waiter: asyncio.Future[R] = loop.create_future()
        batch.items.append(item)
        batch.waiters.append(waiter)
        if key is not None:
            batch.keys.add(key)
        if len(batch.items) >= self._max_items:
            self._start(batch)
        elif batch.timer is None and not batch.started:
            batch.timer = loop.call_later(self._max_delay_s, self._start, batch)
        return waiter

    def _batch_for(self, key: Hashable | None) -> _Batch[T, R]:
        for batch in self._collecting:
            if len(batch.items) < self._max_items and (key is None or key not in batch.keys):
                return batch
        batch: _Batch[T, R] = _Batch()
        self._collecting.append(batch)
        return batch

    def _start(self, batch: _Batch[T, R]) -> None:
        if batch.started:
            return  # size and timer can both fire
        batch.started = True
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: _Batch[T, R]) -> None:
        try:
            async with self._writes:
                # Sealed only now: while it waited for a slot, the batch kept collecting.
                if batch in self._collecting:
                    self._collecting.remove(batch)
                results = await self._write(batch.items)
            if len(results) != len(batch.items):
                raise BatchError(f"{len(results)} results for {len(batch.items)} items")
        except BaseException as exc:
            if batch in self._collecting:  # failed while waiting for a slot: take no more
                self._collecting.remove(batch)
            for waiter in batch.waiters:
                if waiter.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiter.cancel()  # the write was torn down (shutdown): so are its callers
                else:
                    waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for waiter, result in zip(batch.waiters, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)

    async def close(self) -> None:
        """Write whatever is still collected and wait for every write; refuse new items."""
        self._closed = True
        for batch in list(self._collecting):
            self._start(batch)
        if self._running:
            with contextlib.suppress(BaseException):
                await asyncio.gather(*self._running, return_exceptions=True)
