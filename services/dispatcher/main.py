"""`hookpost dispatcher`: consume `<prefix>.dispatcher`, fan each event out to deliveries,
and POST their first attempts itself while it has room (first_attempts.py); keep what
`<prefix>.dead.events` receives (libs/worker/poison.py); and re-drive what PostgreSQL says
is overdue (reconciler.py); and keep the history tables' day partitions
(libs/infra/db/partitions.py: retention)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from libs.delivery.assembly import open_engine
from libs.delivery.metrics import EngineMetrics
from libs.delivery.ordering import LineReleases
from libs.delivery.publisher import StepPublisher
from libs.infra.broker.messages import event_traces_of
from libs.infra.broker.topology import Topology, declare_topology
from libs.infra.db.partitions import PartitionMaintenance
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
from services.dispatcher import metrics
from services.dispatcher.first_attempts import FirstAttempts
from services.dispatcher.handler import CONCURRENT_BATCHES, CONCURRENT_WAITS, Dispatcher
from services.dispatcher.reconciler import Reconciler
from services.dispatcher.repository import DispatcherRepository
from services.dispatcher.set_aside import SetAside

SERVICE = "dispatcher"  # the label of its delivery engine's metrics
# A connection per batch in flight and per copy waiting for its twin (each holds locks),
# plus one for the readiness probe and the requeue's wait for the database, and one for the
# reconciler's pass.
DB_POOL_SIZE = CONCURRENT_BATCHES + CONCURRENT_WAITS + 2
# Each statement is planned once per prepared-statement lifetime (libs/infra/db/pool.py),
# not once per batch: PostgreSQL kept choosing custom plans for the prepare statement, and
# planning it cost more than running it (BENCHMARKS.md). Its generic plan runs a little
# slower but costs nothing to plan. The statements reach their rows by joining `unnest`
# arrays to primary keys, a shape whose generic plan stays a nested loop of index scans
# (`= ANY ($1)` became a bitmap scan).
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}
# The first attempts' own pool: records are batched across attempts in flight (their rows are
# not loaded: they were just created; only an agent sink's job is read). Generic plans too:
# with PostgreSQL's default, the record statement was planned afresh on every call, 0.83 ms
# of planning against 0.96 ms of execution; generic, 0.05 ms and 0.81-0.84 ms
# (pg_stat_statements, BENCHMARKS.md "Session 13").
FIRST_ATTEMPTS_POOL_SIZE = 6


async def open_pool(settings: Settings) -> asyncpg.Pool:
    return await connect_database(
        settings.database_url, max_size=DB_POOL_SIZE, server_settings=GENERIC_PLANS
    )


async def serve(settings: Settings) -> None:
    topology = Topology.of(settings)
    ops = await start_ops(settings)  # /healthz at once; /readyz 503 until connected
    pool = await open_pool(settings)
    # Retention: day partitions created ahead and dropped past HOOKPOST_RETENTION_DAYS, at
    # start and hourly, by one dispatcher replica at a time (an advisory lock). It needs only
    # PostgreSQL: it starts before the broker is reached, and goes on while it is away.
    partitions = PartitionMaintenance(
        settings.database_url,
        settings.retention_days,
        settings.partition_maintenance_interval_s,
    )
    partitions.start()
    broker = build_broker(settings, settings.dispatcher_prefetch)
    pause = ConsumerPause(broker, pool)
    publisher = StepPublisher(broker, topology, EngineMetrics(SERVICE))
    first_attempts, close_first_attempts = await open_first_attempts(
        settings, broker, topology, publisher
    )
    releases = LineReleases(pool, settings.payload_cap_bytes)
    dispatcher = Dispatcher(
        DispatcherRepository(pool),
        publisher,
        pending_limit=settings.backpressure_pending_limit,
        payload_cap_bytes=settings.payload_cap_bytes,
        max_batch=settings.dispatcher_prefetch,  # the most events ever in flight together
        first_attempts=first_attempts,
        releases=releases,
        set_aside=SetAside(broker, topology),
    )

    async def on_event(message: RabbitMessage) -> Verdict:
        redelivered = bool(message.raw_message.redelivered)
        return await dispatcher.handle(
            message.body, redelivered=redelivered, event_traces=event_traces_of(message.headers)
        )

    consume(
        broker,
        topology.dispatcher_queue,
        topology.events_exchange,
        on_event,
        pause,
        in_flight=metrics.IN_FLIGHT,
    )

    poison = PoisonKeeper(pool, topology.dead_events_queue.name)

    async def on_dead_event(message: RabbitMessage) -> Verdict:
        return await poison.keep(message.body, message.headers, message.raw_message.message_id)

    consume_dead_letters(
        broker, topology.dead_events_queue, topology.dead_exchange, on_dead_event, pause
    )

    await broker.connect()
    await declare_topology(broker, topology)

    reconciler = Reconciler(pool, broker, topology, publisher, settings, releases)
    # Retention: day partitions created ahead and dropped past HOOKPOST_RETENTION_DAYS, at
    # start and hourly, by one dispatcher replica at a time (an advisory lock).
    partitions = PartitionMaintenance(
        settings.database_url,
        settings.retention_days,
        settings.partition_maintenance_interval_s,
    )

    async def on_started() -> None:
        reconciler.start()

    async def on_stopped() -> None:
        await partitions.stop()
        await reconciler.stop()
        await dispatcher.close()
        await close_first_attempts()

    await run_until_stopped(
        "dispatcher",
        settings,
        broker,
        pool,
        pause,
        on_started=on_started,
        on_stopped=on_stopped,
        ops=ops,
    )


async def open_first_attempts(
    settings: Settings, broker: RabbitBroker, topology: Topology, publisher: StepPublisher
) -> tuple[FirstAttempts | None, Callable[[], Awaitable[None]]]:
    """The delivery engine for the first attempts made here, and how to close it; none when
    `dispatcher_first_attempts` is 0."""
    if settings.dispatcher_first_attempts == 0:
        return None, _nothing_to_close
    pool = await connect_database(
        settings.database_url, max_size=FIRST_ATTEMPTS_POOL_SIZE, server_settings=GENERIC_PLANS
    )
    running = await open_engine(
        settings,
        pool,
        broker,
        topology,
        service=SERVICE,
        max_connections=settings.dispatcher_first_attempts,
    )
    first_attempts = FirstAttempts(
        running.engine,
        publisher,
        max_attempts=settings.dispatcher_first_attempts,
        # Half the prefetch at most waits on POSTs, so new messages always keep flowing.
        max_messages=max(1, settings.dispatcher_prefetch // 2),
    )

    async def close() -> None:
        await running.close()
        await pool.close()

    return first_attempts, close


async def _nothing_to_close() -> None:
    return None


def run() -> None:
    run_worker("dispatcher", serve)
