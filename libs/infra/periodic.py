"""Work a process repeats in the background (the outbox relay, the reconciler, a worker's
heartbeat): every `interval_s` until stopped. A failing round is logged and the loop goes on:
these loops exist to outlive broker and database outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("hookpost.periodic")


class Periodic:
    def __init__(
        self,
        name: str,
        interval_s: float,
        round_: Callable[[], Awaitable[object]],
        *,
        first_after_s: float = 0.0,
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._round = round_
        self._first_after_s = first_after_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        await asyncio.sleep(self._first_after_s)
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s round failed; trying again", self._name)
            await asyncio.sleep(self._interval_s)
