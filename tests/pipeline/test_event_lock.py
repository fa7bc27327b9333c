"""The dispatcher's per-event locks on the real PostgreSQL, with the workers' reset-free pool.

`prepare` takes the locks in the same statement that stores the events: a batch tries each
lock (`locked=False` when another session holds it, at once), and a single copy that must
wait for its twin waits in its own `prepare` until the first is dispatched and unlocked,
then finds nothing to publish. A connection must never go back to the pool still holding
a lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra.broker.messages import EventMessage
from libs.infra.db.pool import create_pool
from services.dispatcher.repository import (
    DispatcherRepository,
    EventDataError,
    EventLocks,
    PlannedDeliveries,
)
from tests.support.factories import EndpointRow, event_message, make_endpoint

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


async def _subscribed_event(db_pool: asyncpg.Pool, make_org) -> tuple[EndpointRow, EventMessage]:
    """A new organization's one endpoint, and an event of the type it wants."""
    org = await make_org()
    endpoint = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/x", ["mapping.completed"]
    )
    return endpoint, event_message(org.organizationId)


def _one(event_id: str, endpoint_id: str) -> list[PlannedDeliveries]:
    return [PlannedDeliveries(event_id, [new_id(IdPrefix.DELIVERY)], [endpoint_id])]


async def test_a_second_copy_waits_for_the_first_then_publishes_nothing(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    endpoint, event = await _subscribed_event(db_pool, make_org)
    repo = DispatcherRepository(worker_pool)

    async with repo.event_locks() as first:
        [ctx] = await first.prepare([event], pending_limit=100)
        assert ctx is not None and ctx.locked and ctx.dispatched_at is None
        assert ctx.endpoint_ids == [endpoint.id]

        async def second_copy() -> list | None:
            async with repo.event_locks(wait=True) as second:
                [ctx] = await second.prepare([event], pending_limit=100)
                assert ctx is not None and ctx.locked
                found = await second.insert_deliveries(_one(event.id, endpoint.id))
                return found[event.id]

        waiting = asyncio.create_task(second_copy())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second copy must wait for the event's lock"
        pending = (await first.insert_deliveries(_one(event.id, endpoint.id)))[event.id]
        assert pending is not None and len(pending) == 1
        await first.finish([event.id])

    assert await asyncio.wait_for(waiting, timeout=30) is None  # dispatched: nothing to publish
    deliveries = await db_pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE event_id = $1", event.id
    )
    assert deliveries == 1
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_finish_keeps_each_lock_until_the_mark_commits(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    # `finish` releases the session locks in the statement that marks the events, before it
    # commits. A twin that could lock the event in between would still read it undispatched
    # and publish its deliveries again: the lock must be held for the transaction until then.
    # (The mark runs inside a transaction held open here, to look into that gap.)
    endpoint, event = await _subscribed_event(db_pool, make_org)
    repo = DispatcherRepository(worker_pool)
    try_lock = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
    async with db_pool.acquire() as twin:
        async with repo.event_locks() as first:
            await first.prepare([event], pending_limit=100)
            await first.insert_deliveries(_one(event.id, endpoint.id))
            assert first._conn is not None
            transaction = first._conn.transaction()
            await transaction.start()
            await first.finish([event.id])
            assert await twin.fetchval(try_lock, event.id) is False, "unlocked before the mark"
            await transaction.commit()
        assert await twin.fetchval(try_lock, event.id) is True
        await twin.execute("SELECT pg_advisory_unlock_all()")
    dispatched = await db_pool.fetchval("SELECT dispatched_at FROM events WHERE id = $1", event.id)
    assert dispatched is not None
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_the_deliveries_statement_finishes_the_events_it_is_given(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    # An event whose first attempts are all made here is marked and unlocked by the
    # deliveries statement (no `finish`): its lock, like finish's, is held until the mark
    # commits; the other event of the batch stays locked and unmarked until its finish.
    endpoint, here = await _subscribed_event(db_pool, make_org)
    later = event_message(endpoint.organization_id)
    repo = DispatcherRepository(worker_pool)
    try_lock = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
    dispatched = "SELECT id FROM events WHERE id = ANY($1::text[]) AND dispatched_at IS NOT NULL"
    async with db_pool.acquire() as twin:
        async with repo.event_locks() as batch:
            await batch.prepare([here, later], pending_limit=100)
            assert batch._conn is not None
            transaction = batch._conn.transaction()
            await transaction.start()
            found = await batch.insert_deliveries(
                [*_one(here.id, endpoint.id), *_one(later.id, endpoint.id)], finished=[here.id]
            )
            assert [len(found[here.id] or []), len(found[later.id] or [])] == [1, 1]
            assert await twin.fetchval(try_lock, here.id) is False, "unlocked before the mark"
            await transaction.commit()
            assert await twin.fetchval(try_lock, here.id) is True
            assert await twin.fetchval(try_lock, later.id) is False  # still the batch's
            assert [r["id"] for r in await db_pool.fetch(dispatched, [here.id, later.id])] == [
                here.id
            ]
            await batch.finish([later.id])
        await twin.execute("SELECT pg_advisory_unlock_all()")
    assert len(await db_pool.fetch(dispatched, [here.id, later.id])) == 2
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_a_batch_all_finished_by_its_deliveries_statement_needs_no_unlock(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    endpoint, event = await _subscribed_event(db_pool, make_org)
    async with DispatcherRepository(worker_pool).event_locks() as batch:
        await batch.prepare([event], pending_limit=100)
        await batch.insert_deliveries(_one(event.id, endpoint.id), finished=[event.id])
        assert batch._conn is not None
        assert await db_pool.fetchval(LOCKS_HELD, [batch._conn.get_server_pid()]) == 0
        assert not batch._locked  # so the exit sends no unlock statement
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_a_batch_does_not_wait_for_a_lock_another_session_holds(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    held, free = event_message(org.organizationId), event_message(org.organizationId)
    repo = DispatcherRepository(worker_pool)
    async with repo.event_locks() as first:
        [ctx] = await first.prepare([held], pending_limit=100)
        assert ctx is not None and ctx.locked
        async with repo.event_locks() as batch:
            contexts = await asyncio.wait_for(
                batch.prepare([held, free], pending_limit=100), timeout=5
            )
            assert [c.locked if c else None for c in contexts] == [False, True]
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_an_unknown_organization_takes_no_lock_and_leaves_none_behind(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool
) -> None:
    event = event_message("org_does_not_exist")
    repo = DispatcherRepository(worker_pool)
    async with repo.event_locks() as lock:
        assert await lock.prepare([event], pending_limit=100) == [None]
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_a_cancelled_wait_for_the_lock_never_returns_a_locked_connection(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    event = event_message(org.organizationId)
    repo = DispatcherRepository(worker_pool)
    async with repo.event_locks() as first:
        await first.prepare([event], pending_limit=100)

        async def second_copy() -> None:
            async with repo.event_locks(wait=True) as second:
                await second.prepare([event], pending_limit=100)

        waiting = asyncio.create_task(second_copy())
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    # Both connections are back (the cancelled one replaced): none holds an advisory lock.
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


async def test_a_statement_that_fails_after_taking_locks_leaves_none_behind(
    worker_pool: asyncpg.Pool, db_pool: asyncpg.Pool, make_org
) -> None:
    # An agent whose stored rules Postgres cannot read as a boolean fails the prepare
    # statement at the agent sink's event, after the other rows took their locks (session
    # locks outlive the failed statement): the batch's exit must release them.
    good_org, bad_org = await make_org(), await make_org(Plan.PRO_MAX)
    agent_id = new_id(IdPrefix.AGENT)
    await db_pool.execute(
        "INSERT INTO agents (id, organization_id, name, workspace_id, rules)"
        " VALUES ($1, $2, 'agent', 'ws_1', $3)",
        agent_id,
        bad_org.organizationId,
        {"data_sinks": {"auto_push_on_job_complete": "maybe"}},
    )
    await make_endpoint(
        db_pool,
        bad_org.organizationId,
        "http://127.0.0.1:9/sink",
        ["mapping.completed"],
        kind=EndpointKind.AGENT_SINK,
        agent_id=agent_id,
    )
    goods = [event_message(good_org.organizationId) for _ in range(20)]
    bad = event_message(bad_org.organizationId)
    repo = DispatcherRepository(worker_pool)
    async with repo.event_locks() as batch:
        with pytest.raises(EventDataError):
            await batch.prepare([*goods, bad], pending_limit=100)
        # the case this test is about: rows before the failing one hold their locks now
        assert await db_pool.fetchval(LOCKS_HELD, [lock_pid(batch)]) > 0
    assert await db_pool.fetchval(LOCKS_HELD, await _backend_pids(worker_pool)) == 0


def lock_pid(lock: EventLocks) -> int:
    conn = lock._conn
    assert conn is not None
    return conn.get_server_pid()
