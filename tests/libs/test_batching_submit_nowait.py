"""Batcher.submit_nowait: an item that must be written, by a caller that will not wait for it."""

from __future__ import annotations

import asyncio

import pytest

from libs.infra.batching import Batcher
from tests.libs.test_batching import LONG, Writer


async def test_submit_nowait_returns_before_the_write_and_joins_the_same_batch() -> None:
    writer = Writer()
    writer.release.clear()
    batcher: Batcher[int, int] = Batcher(writer, max_items=3, max_delay_s=LONG)
    first = batcher.submit_nowait(1)  # returns at once: no await
    second = batcher.submit_nowait(2)
    waiting = asyncio.ensure_future(batcher.submit(3))  # the third item fills the batch
    await asyncio.wait_for(writer.entered.wait(), timeout=10)
    assert not first.done() and not second.done()
    writer.release.set()
    assert await asyncio.wait_for(waiting, timeout=10) == 6
    assert (first.result(), second.result()) == (2, 4)
    assert writer.batches == [[1, 2, 3]]


async def test_close_writes_what_submit_nowait_left_collected() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=100, max_delay_s=LONG)
    futures = [batcher.submit_nowait(n) for n in range(3)]
    await asyncio.wait_for(batcher.close(), timeout=10)
    assert [f.result() for f in futures] == [0, 2, 4]
    assert writer.batches == [[0, 1, 2]]
    with pytest.raises(RuntimeError):
        batcher.submit_nowait(9)
