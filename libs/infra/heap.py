"""How the cyclic garbage collector runs in a service process."""

from __future__ import annotations

import gc

# Container allocations between two young-generation collections (CPython's default: 700).
# A service allocates a few hundred containers per message (frames, headers, records,
# models), nearly all freed by reference counting, never by the collector. At 700 the
# collector ran every message or two and walked whatever was in flight at that moment
# (BENCHMARKS.md has what it cost).
YOUNG_GENERATION_THRESHOLD = 10_000


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
