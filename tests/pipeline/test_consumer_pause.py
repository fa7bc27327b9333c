"""A worker whose PostgreSQL stops answering stops taking messages (its consumer is cancelled:
a redelivery loop would burn the queue's delivery limit and dead-letter live work), keeps
what it holds, and consumes again once the database answers; nothing is lost.

The dispatcher reaches PostgreSQL through a TCP proxy the test cuts; the shared server keeps
running for everyone else.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from harness.metrics import metric_value
from harness.process import Process
from harness.waiting import eventually
from tests.support.factories import event_message
from tests.support.stacks import Pipeline
from tests.support.tcp_proxy import TcpProxy, through

pytestmark = pytest.mark.e2e


async def _paused(dispatcher: Process) -> float:
    return await asyncio.to_thread(metric_value, dispatcher, "hookpost_worker_consuming_paused")


async def _dispatched(pool: asyncpg.Pool, event_ids: list[str]) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE id = ANY ($1) AND dispatched_at IS NOT NULL", event_ids
    )


async def test_a_worker_stops_consuming_while_its_database_is_away(
    test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy, make_org
) -> None:
    org = await make_org()
    async with Pipeline(
        test_env,
        "pause",
        HOOKPOST_DATABASE_URL=through(test_env["HOOKPOST_DATABASE_URL"], db_proxy),
        HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0",
    ) as pipe:
        # Messages waiting for a consumer, as the broker sees them now. Asked after a publish
        # is confirmed, it is exact: a quorum queue hands a message to a consumer with room
        # before it confirms the publish.
        queue = pipe.topology.dispatcher_queue.name
        dispatcher = await pipe.stack.add_dispatcher()
        await db_proxy.cut()
        held = event_message(org.organizationId)
        await pipe.publish(held)  # taken, fails on the database: the worker pauses
        await eventually(lambda: _paused(dispatcher), lambda paused: paused == 1)
        waiting = event_message(org.organizationId)
        await pipe.publish(waiting)
        assert await pipe.queue_depth(queue) == 1  # nobody took it: the consumer is cancelled
        assert await _dispatched(db_pool, [held.id, waiting.id]) == 0

        await db_proxy.restore()
        ids = [held.id, waiting.id]
        await eventually(lambda: _dispatched(db_pool, ids), lambda n: n == 2, timeout=30)
        assert await pipe.queue_depth(queue) == 0
        assert await _paused(dispatcher) == 0
        assert metric_value(dispatcher, "hookpost_worker_pauses_total") == 1
