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


@pytest.fixture
def generations() -> Iterator[list[int]]:
    """The generation of every collection from now on."""
    collected: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.collect()  # nothing earlier is left for the first middle collection to find
    gc.callbacks.append(note)
    yield collected
    gc.callbacks.remove(note)


def ticks(collector: ClockedCollector, count: int) -> None:
    """`count` of the collector's ticks, one after the other: nothing runs in between, so
    nothing else allocates (its own clock is an hour: it never ticks by itself here)."""
    for _ in range(count):
        collector._tick()


def plant_garbage_in_the_middle_generation(collector: ClockedCollector) -> None:
    """Cycles that outlive a young collection (the next tick), then become garbage: only a
    collection of the middle generation (or of all) finds them."""
    cycles = [Node() for _ in range(2_000)]
    for node in cycles:
        node.other = node
    ticks(collector, 1)
    cycles.clear()


def middle_and_full(generations: list[int]) -> tuple[list[int], list[int]]:
    """The ticks (from 1) at which the middle generation, and everything, were collected."""
    at = [(n + 1, generation) for n, generation in enumerate(generations)]
    return [n for n, g in at if g == 1], [n for n, g in at if g == 2]


async def test_middle_collections_wait_for_garbage_then_come_ever_more_rarely(
    generations: list[int],
) -> None:
    collector = ClockedCollector(young_every_s=3600, middle_every=2, old_every=8)
    collector.start()
    try:
        ticks(collector, 1)
        plant_garbage_in_the_middle_generation(collector)  # tick 2
        ticks(collector, 46)
    finally:
        collector.stop()
    # none before the full collection (16) finds the garbage; then after 2, 4, 8 ticks, and
    # none apart from the full ones once the period reaches theirs
    assert middle_and_full(generations) == ([18, 22, 30], [16, 32, 48])


async def test_garbage_in_the_middle_generation_brings_its_collections_back(
    generations: list[int],
) -> None:
    collector = ClockedCollector(young_every_s=3600, middle_every=2, old_every=8)
    collector.start()
    try:
        plant_garbage_in_the_middle_generation(collector)  # tick 1
        ticks(collector, 18)  # the full one at 16 finds it; the middle one at 18 nothing
        plant_garbage_in_the_middle_generation(collector)  # tick 20
        ticks(collector, 12)
    finally:
        collector.stop()
    # the one at 22 finds it: every 2 ticks again, then 4
    assert middle_and_full(generations) == ([18, 22, 24, 28], [16, 32])
