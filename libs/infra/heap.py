"""How the cyclic garbage collector runs in a service process."""

from __future__ import annotations

import gc

# Container allocations between two young-generation collections (CPython's default: 700).
# A service allocates a few hundred containers per message (frames, headers, records,
# models), nearly all freed by reference counting, never by the collector. At 700 the
# collector ran every message or two and walked whatever was in flight at that moment:
# `gc_collect_main` was 3.5-6.6 % of the api's, dispatcher's and sender's main threads at
# 200 events/s (py-spy --native), and 0-1 % at 10,000 (BENCHMARKS.md round 5).
YOUNG_GENERATION_THRESHOLD = 10_000


def configure_garbage_collector() -> None:
    """Call once the service has imported and built what it lives with, before it serves.

    The objects alive then (some 115,000: modules, classes, the app) live as long as the
    process; frozen, no collection walks them again (a full one took 50 ms here, with the
    event loop stopped). Younger objects are collected less often (above).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
