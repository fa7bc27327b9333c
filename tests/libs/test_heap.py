"""The collector settings every service process starts with, and the clocked collections of
the workers (libs/infra/heap.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from libs.infra.heap import (
    YOUNG_GENERATION_THRESHOLD,
    ClockedCollector,
    configure_garbage_collector,
)


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_the_startup_heap_is_frozen_and_young_objects_collected_less_often() -> None:
    startup_object = {"built": "at startup"}
    configure_garbage_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD > 700
    # Frozen: a full collection no longer tracks it in any generation.
    assert not any(startup_object is obj for obj in gc.get_objects())


class Node:
    """A container that can reference itself: a cycle only the collector frees."""

    def __init__(self) -> None:
        self.other: Node | None = None


async def test_a_worker_collects_a_cycle_on_the_clock_without_allocating_more() -> None:
    """Allocation counts never reach the young threshold here, so CPython alone would leave
    the cycle for as long as the process lives; the clocked collector frees it within a few
    of its periods, and automatic collection is off only while it runs."""
    gc.collect()  # no automatic collection moves the cycle up before the clock's first
    freed = asyncio.Event()
    node = Node()
    node.other = node
    weakref.finalize(node, freed.set)
    del node
    collector = ClockedCollector(young_every_s=0.01)
    collector.start()
    try:
        assert not gc.isenabled()
        await asyncio.wait_for(freed.wait(), timeout=1.0)
    finally:
        collector.stop()
    assert gc.isenabled()


async def test_older_generations_are_collected_every_so_many_young_collections() -> None:
    collected: list[int] = []
    twelve = asyncio.Event()

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["generation"])
            if len(collected) == 12:
                twelve.set()

    gc.callbacks.append(note)
    collector = ClockedCollector(young_every_s=0.001, middle_every=2, old_every=3)
    collector.start()
    try:
        await asyncio.wait_for(twelve.wait(), timeout=5.0)
    finally:
        collector.stop()
        gc.callbacks.remove(note)
    assert collected[:12] == [0, 1, 0, 1, 0, 2] * 2
