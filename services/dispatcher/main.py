"""`hookpost dispatcher`: consume `<prefix>.dispatcher`, fan each event out to delivery tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from libs.common.broker.topology import Topology, declare_topology
from libs.common.db.pool import create_pool
from libs.common.logs import configure_logging
from libs.common.ops_server import start_ops_server
from libs.common.settings import Settings, get_settings
from services.dispatcher.handler import Dispatcher, Verdict
from services.dispatcher.publisher import DeliveryPublisher
from services.dispatcher.repository import DispatcherRepository

log = logging.getLogger("hookpost.dispatcher")
DB_POOL_SIZE = 10


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """Skip FastStream's JSON decoding: the handler parses the body once, itself."""
    return message.body


async def wait_for_database(pool: asyncpg.Pool, max_wait_s: float = 30.0) -> None:
    """Before a requeue: wait (bounded) until Postgres answers again.

    A redelivery while Postgres restarts would fail at once and burn the queue's delivery
    limit in a second, dead-lettering live work; waiting here spends wall-clock time instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    await asyncio.sleep(0.5)
    while loop.time() < deadline:
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=2.0)
            return
        except Exception:
            await asyncio.sleep(0.5)


async def connect_database(dsn: str, max_size: int, max_wait_s: float = 60.0) -> asyncpg.Pool:
    """The pool, waiting (bounded) for a Postgres that is restarting or out of connections."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while True:
        try:
            return await create_pool(dsn, min_size=1, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if loop.time() > deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc)})
            await asyncio.sleep(1.0)


async def settle(message: RabbitMessage, verdict: Verdict) -> None:
    try:
        if verdict is Verdict.ACK:
            await message.ack()
        elif verdict is Verdict.REJECT:
            await message.reject(requeue=False)
        else:
            await message.nack(requeue=True)
    except Exception:
        # The channel is gone: the broker redelivers the message, which is safe.
        log.warning("could not settle a message", extra={"verdict": verdict.value}, exc_info=True)


def build_broker(settings: Settings, prefetch: int) -> RabbitBroker:
    return RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(
            prefetch_count=prefetch,
            global_qos=False,
            publisher_confirms=True,
            on_return_raises=True,
        ),
        graceful_timeout=settings.shutdown_grace_s,
        decoder=_raw_body,
        log_level=logging.DEBUG,  # FastStream's per-message lines stay below INFO
    )


async def stop_consuming(broker: RabbitBroker) -> None:
    """basic.cancel every consumer, so no new message arrives while in-flight ones finish.

    FastStream's own stop waits for running handlers first and cancels afterwards, so the
    broker would keep handing this replica messages (held unprocessed until the channel
    closes) for the whole grace period; cancelling first sends them to other replicas.
    """
    for subscriber in broker.subscribers:
        queue = getattr(subscriber, "_queue_obj", None)
        tag = getattr(subscriber, "_consumer_tag", None)
        if queue is None or tag is None:
            continue
        try:
            await queue.cancel(tag)
            subscriber._consumer_tag = None  # FastStream's stop must not cancel it again
        except Exception:
            log.warning("could not cancel a consumer", exc_info=True)


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


async def serve(settings: Settings) -> None:
    topology = Topology(settings.broker_prefix, settings.retry_delay_scale)
    # An event holds one connection while its tasks are published (the event's lock).
    pool = await connect_database(
        settings.database_url, max_size=max(2, min(settings.dispatcher_prefetch, DB_POOL_SIZE))
    )
    broker = build_broker(settings, settings.dispatcher_prefetch)
    dispatcher = Dispatcher(
        DispatcherRepository(pool),
        DeliveryPublisher(broker, topology),
        pending_limit=settings.backpressure_pending_limit,
        payload_cap_bytes=settings.payload_cap_bytes,
    )

    @broker.subscriber(
        topology.dispatcher_queue, topology.events_exchange, ack_policy=AckPolicy.MANUAL
    )
    async def on_event(message: RabbitMessage) -> None:
        verdict = await dispatcher.handle(message.body)
        if verdict is Verdict.REQUEUE:
            await wait_for_database(pool)
        await settle(message, verdict)

    async def ready() -> bool:
        if not await broker.ping(timeout=1.0):
            return False
        return await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=1.0) == 1

    await broker.connect()
    await declare_topology(broker, topology)
    await broker.start()
    ops = await start_ops_server(settings.ops_host, settings.ops_port, ready)
    log.info("dispatcher consuming", extra={"queue": topology.dispatcher_queue.name})
    try:
        await wait_for_stop_signal()
        log.info(
            "stopping: finishing in-flight events", extra={"grace_s": settings.shutdown_grace_s}
        )
        await stop_consuming(broker)
    finally:
        # Waits for running handlers (graceful_timeout), then closes the channel: anything
        # not acknowledged by then goes back to the queue.
        await broker.stop()
        await ops.cleanup()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=5.0)
        log.info("dispatcher stopped")


def run() -> None:
    settings = get_settings()
    configure_logging("dispatcher")
    asyncio.run(serve(settings))
