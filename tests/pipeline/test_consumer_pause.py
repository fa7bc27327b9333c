"""A worker whose PostgreSQL stops answering stops taking messages (its consumer is cancelled:
a redelivery loop would burn the queue's delivery limit and dead-letter live work), keeps
what it holds, and consumes again once the database answers; nothing is lost.

The dispatcher reaches PostgreSQL through a TCP proxy the test cuts; the shared server keeps
running for everyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

from tests.pipeline.harness import Pipeline, eventually, metric_value
from tests.support.factories import event_message
from tests.support.services import ServiceProcess
from tests.support.tcp_proxy import TcpProxy, proxy_to

pytestmark = pytest.mark.e2e


@pytest.fixture
async def db_proxy(test_env: dict[str, str]) -> AsyncIterator[TcpProxy]:
    proxy = await proxy_to(test_env["HOOKPOST_DATABASE_URL"], 5432)
    yield proxy
    await proxy.cut()


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    credentials, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{port}"))


async def _ready(pipe: Pipeline, name: str) -> int:
    """Messages waiting in a queue for a consumer, as the broker sees them now. Asked after a
    publish is confirmed, it is exact: a quorum queue hands a message to a consumer with
    room before it confirms the publish."""
    connection = await aio_pika.connect(pipe.env["HOOKPOST_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        declared = (await channel.declare_queue(name, passive=True)).declaration_result
        return declared.message_count or 0


async def _paused(dispatcher: ServiceProcess) -> float:
    return await asyncio.to_thread(metric_value, dispatcher, "hookpost_worker_consuming_paused")


async def _dispatched(pool: asyncpg.Pool, event_ids: list[str]) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE id = ANY ($1) AND dispatched_at IS NOT NULL", event_ids
    )


async def test_a_worker_stops_consuming_while_its_database_is_away(
    test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy, make_org
) -> None:
    org = await make_org()
    pipe = Pipeline(
        test_env,
        f"{test_env['HOOKPOST_BROKER_PREFIX']}_pause",
        HOOKPOST_DATABASE_URL=_through(test_env["HOOKPOST_DATABASE_URL"], db_proxy.port),
        HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0",
    )
    queue = pipe.topology.dispatcher_queue.name
    try:
        dispatcher = await pipe.start("dispatcher")
        await db_proxy.cut()
        held = event_message(org.organizationId)
        await pipe.publish(held)  # taken, fails on the database: the worker pauses
        await eventually(lambda: _paused(dispatcher), lambda paused: paused == 1)
        waiting = event_message(org.organizationId)
        await pipe.publish(waiting)
        assert await _ready(pipe, queue) == 1  # nobody took it: the consumer is cancelled
        assert await _dispatched(db_pool, [held.id, waiting.id]) == 0

        await db_proxy.restore()
        ids = [held.id, waiting.id]
        await eventually(lambda: _dispatched(db_pool, ids), lambda n: n == 2, timeout=30)
        assert await _ready(pipe, queue) == 0
        assert await _paused(dispatcher) == 0
        assert metric_value(dispatcher, "hookpost_worker_pauses_total") == 1
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()
