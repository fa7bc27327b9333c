"""The batcher that turns many concurrent callers' rows into one statement."""

from __future__ import annotations

import asyncio

import pytest

from libs.infra.batching import Batcher, BatchError

LONG = 60.0  # a delay no test waits for: a batch that completes was written by size


class Writer:
    """Records each batch it is given; answers each item doubled, or fails on demand."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_with = fail_with
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [item * 2 for item in items]


async def test_a_full_batch_is_written_at_once_and_each_caller_gets_its_own_result() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=3, max_delay_s=LONG)
    results = await asyncio.wait_for(
        asyncio.gather(batcher.submit(1), batcher.submit(2), batcher.submit(3)), timeout=10
    )
    assert results == [2, 4, 6]
    assert writer.batches == [[1, 2, 3]]


async def test_a_partial_batch_is_written_when_its_first_item_has_waited_long_enough() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=100, max_delay_s=0.01)
    assert await asyncio.wait_for(batcher.submit(7), timeout=10) == 14
    assert writer.batches == [[7]]


async def test_items_beyond_the_size_go_to_the_next_batch() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=2, max_delay_s=0.01)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(n) for n in range(5))), timeout=10
    )
    assert results == [0, 2, 4, 6, 8]
    assert sorted(map(len, writer.batches)) == [1, 2, 2]


async def test_an_error_fails_every_caller_of_that_batch_and_only_that_batch() -> None:
    writer = Writer(fail_with=ValueError("disk full"))
    batcher: Batcher[int, int] = Batcher(writer, max_items=2, max_delay_s=LONG)
    first = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 2)]
    done = await asyncio.wait_for(asyncio.gather(*first, return_exceptions=True), timeout=10)
    assert [type(result) for result in done] == [ValueError, ValueError]

    writer.fail_with = None
    assert await asyncio.wait_for(
        asyncio.gather(batcher.submit(3), batcher.submit(4)), timeout=10
    ) == [6, 8]


async def test_a_wrong_number_of_results_fails_the_batch_instead_of_misanswering() -> None:
    async def short_writer(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(short_writer, max_items=2, max_delay_s=LONG)
    outcomes = await asyncio.wait_for(
        asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True), timeout=10
    )
    assert all(isinstance(outcome, BatchError) for outcome in outcomes)


async def test_items_with_the_same_key_never_share_a_batch() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(
        writer, max_items=10, max_delay_s=0.01, key=lambda item: item % 3
    )
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(n) for n in (1, 4, 2, 7))), timeout=10
    )
    assert results == [2, 8, 4, 14]
    for batch in writer.batches:
        keys = [item % 3 for item in batch]
        assert len(keys) == len(set(keys)), batch
    assert sorted(item for batch in writer.batches for item in batch) == [1, 2, 4, 7]


async def test_close_writes_what_is_collected_so_no_caller_is_left_waiting() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=100, max_delay_s=LONG)
    waiting = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)  # let both join the batch
    await asyncio.wait_for(batcher.close(), timeout=10)
    assert [w.result() for w in waiting] == [2, 4]
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(3)


async def test_a_cancelled_write_cancels_its_callers_instead_of_leaving_them_waiting() -> None:
    writer = Writer()
    writer.release.clear()  # the write hangs until cancelled
    batcher: Batcher[int, int] = Batcher(writer, max_items=2, max_delay_s=LONG)
    waiting = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 2)]
    await asyncio.wait_for(writer.entered.wait(), timeout=10)
    for task in list(batcher._running):
        task.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=10)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)


async def test_a_cancelled_caller_does_not_stop_its_item_being_written() -> None:
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer, max_items=2, max_delay_s=LONG)
    gone = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    gone.cancel()
    assert await asyncio.wait_for(batcher.submit(2), timeout=10) == 4
    assert writer.batches == [[1, 2]]


async def test_a_batch_waiting_for_a_write_slot_keeps_collecting() -> None:
    writer = Writer()
    writer.release.clear()  # the first write holds the only slot
    batcher: Batcher[int, int] = Batcher(
        writer, max_items=100, max_delay_s=0, max_concurrent_writes=1
    )
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.wait_for(writer.entered.wait(), timeout=10)
    later = [asyncio.ensure_future(batcher.submit(2))]
    for _ in range(5):
        await asyncio.sleep(0)  # its timer fires: the batch now waits for the slot
    later += [asyncio.ensure_future(batcher.submit(n)) for n in (3, 4)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), timeout=10) == [2, 4, 6, 8]
    assert writer.batches == [[1], [2, 3, 4]]
