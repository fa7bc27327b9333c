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
# YOUNG_EVERY_S; everything every OLD_EVERY × MIDDLE_EVERY young periods (ten minutes); the
# middle one every MIDDLE_EVERY young periods (a minute) once a collection has found garbage
# (more than MIDDLE_WORTH objects), twice as rarely after each that finds less, up to the
# full collection's period.
YOUNG_EVERY_S = 0.1
MIDDLE_EVERY = 600
MIDDLE_WORTH = 1_000
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
    them. Beside a 2 s endpoint a middle collection stopped the dispatcher for 167 ms, and
    the fast endpoint's slowest deliveries were the ones it held up; under a steady load it
    found no garbage. So it is paced by what it finds: once a collection finds garbage it
    comes every minute, and while it finds next to none, each comes twice as late as the
    last, up to the full collection's period (BENCHMARKS.md, "Session 18").
    """

    def __init__(
        self,
        young_every_s: float = YOUNG_EVERY_S,
        middle_every: int = MIDDLE_EVERY,
        old_every: int = OLD_EVERY,
        middle_worth: int = MIDDLE_WORTH,
    ) -> None:
        self._every_s = young_every_s
        self._old_every = middle_every * old_every
        self._middle_least = middle_every
        # Started as if they had found nothing: the worst case is the same (garbage kept up
        # to the full collection's period, as after any quiet spell), and a new process does
        # not stop for a walk that finds nothing a minute in.
        self._middle_every = self._old_every
        self._middle_worth = middle_worth
        self._ticks = 0
        self._since_middle = 0
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
        self._since_middle += 1
        try:
            if self._ticks % self._old_every == 0:
                self._pace_middle(gc.collect(2))
            elif self._since_middle >= self._middle_every:
                self._pace_middle(gc.collect(1))
            else:
                gc.collect(0)
        finally:
            self._schedule()

    def _pace_middle(self, found: int) -> None:
        """After a collection of the middle generation (or of all): when the next one is due."""
        self._since_middle = 0
        if found > self._middle_worth:
            self._middle_every = self._middle_least
        else:
            self._middle_every = min(self._middle_every * 2, self._old_every)
