"""The dispatcher's per-event lock on the real PostgreSQL, with the workers' reset-free pool.

`prepare` takes the lock in the same statement that stores the event; a second copy of the
event waits in its own `prepare` until the first is dispatched and unlocked, then finds
nothing to publish. A connection must never go back to the pool still holding the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.common.db.pool import create_pool
from libs.common.ids import IdPrefix, new_id
from services.dispatcher.repository import DispatcherRepository
from tests.support.factories import event_message, make_endpoint

LOCKS_HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ANY($1::int[])"


@pytest.fixture
async def worker_pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(
        test_env["HOOKPOST_DATABASE_URL"], min_size=2, max_size=2, reset_session=False
    )
    yield pool
    await pool.close()


async def _backend_pids(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as first, pool.acquire() as second:
        return [first.get_server_pid(), second.get_server_pid()]


async def test_a_second_copy_waits_for_the_first_then_publishes_nothing(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    endpoint = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/x", ["mapping.completed"]
    )
    event = event_message(org.organizationId)
    repo = DispatcherRepository(worker_pool)

    async with repo.event_lock(event.id) as first:
        ctx = await first.prepare(event, pending_limit=100)
        assert ctx is not None and ctx.dispatched_at is None
        assert ctx.endpoint_ids == [endpoint.id]

        async def second_copy() -> list | None:
            async with repo.event_lock(event.id) as second:
                assert await second.prepare(event, pending_limit=100) is not None
                return await second.insert_deliveries(
                    org.organizationId, [new_id(IdPrefix.DELIVERY)], [endpoint.id]
                )

        waiting = asyncio.create_task(second_copy())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second copy must wait for the event's lock"
        pending = await first.insert_deliveries(
            org.organizationId, [new_id(IdPrefix.DELIVERY)], [endpoint.id]
        )
        assert pending is not None and len(pending) == 1
        await first.mark_dispatched()

    assert await asyncio.wait_for(waiting, timeout=30) is None  # dispatched: nothing to publish
    deliveries = await db_pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE event_id = $1", event.id
    )
    assert deliveries == 1
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_an_unknown_organization_takes_no_lock_and_leaves_none_behind(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool
) -> None:
    event = event_message("org_does_not_exist")
    repo = DispatcherRepository(worker_pool)
    async with repo.event_lock(event.id) as lock:
        assert await lock.prepare(event, pending_limit=100) is None
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_a_cancelled_wait_for_the_lock_never_returns_a_locked_connection(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    event = event_message(org.organizationId)
    repo = DispatcherRepository(worker_pool)
    async with repo.event_lock(event.id) as first:
        await first.prepare(event, pending_limit=100)

        async def second_copy() -> None:
            async with repo.event_lock(event.id) as second:
                await second.prepare(event, pending_limit=100)

        waiting = asyncio.create_task(second_copy())
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    # Both connections are back (the cancelled one replaced): none holds an advisory lock.
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0
