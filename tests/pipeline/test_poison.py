"""Nothing dead-lettered is dropped: what is not a delivery's normal end is kept as poison,
counted, listed by `hookpost poison list`, and `hookpost poison replay` sends it back."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from harness.metrics import metric_value
from harness.process import HOOKPOST_BIN, Process
from harness.waiting import eventually
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import persistent_message
from libs.infra.broker.topology import SEND_ROUTING_KEY
from tests.support.factories import dispatched, event_message
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture
async def pipe(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async with Pipeline(test_env, "poison") as pipeline:
        await pipeline.stack.start(api=False, dispatchers=1, senders=1)
        yield pipeline


async def publish_raw(pipe: Pipeline, exchange: str, routing_key: str, body: bytes) -> None:
    connection = await aio_pika.connect(pipe.env["HOOKPOST_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange)
        await target.publish(persistent_message(body, None), routing_key, mandatory=True)


async def kept(pool: asyncpg.Pool, queue: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM poison_messages WHERE queue = $1 AND replayed_at IS NULL ORDER BY id", queue
    )


def hookpost(pipe: Pipeline, *args: str) -> str:
    done = subprocess.run(
        [str(HOOKPOST_BIN), *args], env=pipe.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def poison_count(proc: Process, queue: str) -> float:
    return metric_value(proc, "hookpost_poison_messages_total", f'queue="{queue}"')


async def test_dead_lettered_events_are_kept_listed_and_replayed(
    pipe: Pipeline, db_pool: asyncpg.Pool
) -> None:
    dead_events = pipe.topology.dead_events_queue.name
    events = pipe.topology.events_exchange.name
    await publish_raw(pipe, events, "mapping.completed", b"{not json")
    stranger = event_message(new_id(IdPrefix.ORGANIZATION))  # an organization nobody created
    await pipe.publish(stranger)

    rows = await eventually(lambda: kept(db_pool, dead_events), lambda rows: len(rows) == 2)
    assert {row["reason"] for row in rows} == {"rejected"}
    assert {(row["exchange"], row["routing_key"]) for row in rows} == {
        (events, "mapping.completed")
    }
    [unknown_org] = [row for row in rows if row["message_id"] == stranger.id]
    dispatcher = pipe.stack.dispatcher
    assert await asyncio.to_thread(poison_count, dispatcher, dead_events) == 2
    listed = [json.loads(line) for line in hookpost(pipe, "poison", "list").splitlines()]
    assert unknown_org["id"] in {row["id"] for row in listed}

    # The organization exists now: the replayed event is dispatched like any other.
    await db_pool.execute(
        "INSERT INTO organizations (id, name, plan) VALUES ($1, 'late', 'FREE')",
        stranger.organization_id,
    )
    assert json.loads(hookpost(pipe, "poison", "replay", str(unknown_org["id"]))) == {"replayed": 1}
    await dispatched(db_pool, stranger.id)
    [malformed] = await kept(db_pool, dead_events)  # the other one still waits
    assert bytes(malformed["body"]) == b"{not json"


async def test_a_task_nothing_can_read_is_kept_not_dropped(
    pipe: Pipeline, db_pool: asyncpg.Pool
) -> None:
    dead_deliveries = pipe.topology.dead_deliveries_queue.name
    deliveries = pipe.topology.deliveries_exchange.name
    await publish_raw(pipe, deliveries, SEND_ROUTING_KEY, b'{"deliveryId": 7}')
    [row] = await eventually(lambda: kept(db_pool, dead_deliveries), lambda rows: len(rows) == 1)
    assert (row["reason"], row["exchange"], row["routing_key"]) == (
        "rejected",
        deliveries,
        SEND_ROUTING_KEY,
    )
    assert bytes(row["body"]) == b'{"deliveryId": 7}'
    assert await asyncio.to_thread(poison_count, pipe.stack.senders[0], dead_deliveries) == 1
