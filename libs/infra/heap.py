"""How the cyclic garbage collector runs in a service process."""

from __future__ import annotations

import asyncio
import gc

# Container allocations between two young-generation collections (CPython's default: 700).
# A service allocates a few hundred containers per message (frames, headers, records,
# models), nearly all freed by reference counting, never by the collector. At 700 the
# collector ran every message or two and walked whatever was in flight at that moment
# (BENCHMARKS.md has what it cost).
YOUNG_GENERATION_THRESHOLD = 10_000

# A worker's collections go by the clock (`ClockedCollector`): the young generation every
# YOUNG_EVERY_S, the middle one every MIDDLE_EVERY young collections (a minute), everything
# every OLD_EVERY middle ones (ten minutes).
YOUNG_EVERY_S = 0.1
MIDDLE_EVERY = 600
OLD_EVERY = 10


def configure_garbage_collector() -> None:
    """Call once the service has imported and built what it lives with, before it serves.

    The objects alive then (modules, classes, the app) live as long as the process; frozen,
    no collection walks them again (a full one stops the event loop for as long as it takes).
    Younger objects are collected less often (above).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


class ClockedCollector:
    """Collects on the event loop's clock instead of CPython's allocation count.

    CPython starts a young collection once allocations minus deallocations pass the
    threshold, and every object freed counts, old ones too. A worker's POSTs to a slow
    endpoint live for seconds, so their objects are old when they are freed: they cancel the
    young objects out, the count stays low, and the young generation grows to 100,000
    objects before one collection walks them all, stopping the loop for 60-90 ms every few
    seconds (BENCHMARKS.md, "Session 15": what the fast endpoint beside a 2 s one paid).
    Collected every YOUNG_EVERY_S, the young generation is what a tenth of a second
    allocated (a few ms to walk). Objects that survive it move up and mostly die there by
    reference counting. The older generations hold every request in flight, so walking them
    costs as long as the young one used to: they are collected rarely, for the cycles among
    them (a minute's cyclic garbage is a few MB).
    """

    def __init__(
        self,
        young_every_s: float = YOUNG_EVERY_S,
        middle_every: int = MIDDLE_EVERY,
        old_every: int = OLD_EVERY,
    ) -> None:
        self._every_s = young_every_s
        self._middle_every = middle_every
        self._old_every = middle_every * old_every
        self._ticks = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Collect on the running loop's clock from now on; no collection on allocations."""
        gc.disable()
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.enable()

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._every_s, self._tick)

    def _tick(self) -> None:
        self._ticks += 1
        generation = 0
        if self._ticks % self._old_every == 0:
            generation = 2
        elif self._ticks % self._middle_every == 0:
            generation = 1
        try:
            gc.collect(generation)
        finally:
            self._schedule()
