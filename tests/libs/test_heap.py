"""The collector settings every service process starts with (libs/infra/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from libs.infra.heap import YOUNG_GENERATION_THRESHOLD, configure_garbage_collector


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
