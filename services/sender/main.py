"""`hookpost sender`: consume `<prefix>.sender` (and `<prefix>.dead`), POST every attempt.

Prefetch is the concurrency limit: aio-pika runs every delivered message as its own task,
so at most `sender_prefetch` POSTs are in flight per replica.

Sharded (HOOKPOST_SENDER_SHARDS=N), every replica consumes every shard, each with an equal
share of the prefetch on a channel of their own (the shards hold about `sender_prefetch` at
most; the drained `<prefix>.sender` one share more while it still has anything): no shard
waits for a replica of its own, and one Deployment scales on the summed depth
(docs/operations.md).

SIGTERM (libs/worker/runtime.py): every consumer is cancelled first (the broker sends this
replica nothing new), then running handlers get up to `shutdown_grace_s` to record their
attempt and settle their message, and the channel closes, which returns anything still
unacknowledged to the queue. Then exit 0.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver
from faststream.rabbit import Channel, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from libs.delivery.assembly import open_engine
from libs.infra.broker.topology import Topology, declare_topology
from libs.infra.settings import Settings
from libs.worker.consumers import ConsumerPause, Verdict, consume, consume_dead_letters
from libs.worker.poison import PoisonKeeper
from libs.worker.runtime import (
    build_broker,
    connect_database,
    run_until_stopped,
    run_worker,
    start_ops,
)
from services.sender import metrics
from services.sender.consumer import SenderConsumer

# Loads and records are batched across in-flight deliveries (repository.py), none held
# across the POST: a few connections go far.
DB_POOL_SIZE = 10


async def serve(settings: Settings, resolver: AbstractResolver | None = None) -> None:
    """Run until SIGTERM; `resolver` replaces aiohttp's name lookup (the checks stay)."""
    topology = Topology.of(settings)
    ops = await start_ops(settings)  # /healthz at once; /readyz 503 until connected
    pool = await connect_database(settings.database_url, max_size=DB_POOL_SIZE)
    broker = build_broker(settings, settings.sender_prefetch)
    pause = ConsumerPause(broker, pool)
    running = await open_engine(
        settings,
        pool,
        broker,
        topology,
        service="sender",
        max_connections=settings.sender_prefetch,
        resolver=resolver,
    )
    poison = PoisonKeeper(pool, topology.dead_deliveries_queue.name)
    consumer = SenderConsumer(running.engine, poison)

    def on_task_from(queue: str) -> Callable[[RabbitMessage], Awaitable[Verdict]]:
        taken = metrics.TASKS.labels(queue=queue)

        async def on_task(message: RabbitMessage) -> Verdict:
            taken.inc()
            return await consumer.on_task(message.body, message.headers)

        return on_task

    async def on_dead_letter(message: RabbitMessage) -> Verdict:
        return await consumer.on_dead_letter(
            message.body, message.headers, message.raw_message.message_id
        )

    for queue, exchange, channel in _work_queues(topology, settings.sender_prefetch):
        on_task = on_task_from(queue.name)
        consume(
            broker, queue, exchange, on_task, pause, in_flight=metrics.IN_FLIGHT, channel=channel
        )
    consume_dead_letters(
        broker, topology.dead_deliveries_queue, topology.dead_exchange, on_dead_letter, pause
    )

    await broker.connect()
    await declare_topology(broker, topology)

    await run_until_stopped(
        "sender", settings, broker, pool, pause, on_stopped=running.close, ops=ops
    )


def _work_queues(
    topology: Topology, prefetch: int
) -> list[tuple[RabbitQueue, RabbitExchange, Channel | None]]:
    """What this replica consumes; unsharded, `<p>.sender` on the default channel as always."""
    if not topology.sharded:
        return [(topology.sender_queue, topology.deliveries_exchange, None)]
    share = math.ceil(prefetch / topology.sender_shards)
    shards = [
        (queue, topology.work_exchange, Channel(prefetch_count=share, global_qos=False))
        for queue in topology.sender_queues
    ]
    # `<p>.sender` is only drained: the default exchange (no name) binds it to nothing.
    drained = (topology.sender_queue, RabbitExchange(), Channel(prefetch_count=share))
    return [*shards, drained]


def run() -> None:
    run_worker("sender", serve)
