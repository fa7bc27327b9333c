"""`hookpost sender`: consume `<prefix>.sender` (and `<prefix>.dead`), POST every attempt.

Prefetch is the concurrency limit: aio-pika runs every delivered message as its own task,
so at most `sender_prefetch` POSTs are in flight per replica.

SIGTERM: every consumer is cancelled first (basic.cancel: the broker sends this replica
nothing new), then FastStream's broker stop waits up to `shutdown_grace_s` for running
handlers to finish (each records its attempt and settles its message) and closes the
channel, which returns anything still unacknowledged to the queue. Then exit 0.
"""

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
from libs.common.url_safety import SafetyPolicy
from services.sender.consumer import DeliverySender, Verdict
from services.sender.dead_letters import DeadLetterHandler
from services.sender.http_client import HttpClient
from services.sender.repository import SenderRepository
from services.sender.retries import BrokerRetryPublisher

log = logging.getLogger("hookpost.sender")
DEAD_LETTER_PREFETCH = 32
# Two short statements per delivery, none held across the POST: a few connections go far.
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
    pool = await connect_database(settings.database_url, max_size=DB_POOL_SIZE)
    repository = SenderRepository(pool)
    broker = RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(
            prefetch_count=settings.sender_prefetch,
            global_qos=False,
            publisher_confirms=True,
            on_return_raises=True,
        ),
        graceful_timeout=settings.shutdown_grace_s,
        decoder=_raw_body,
        log_level=logging.DEBUG,  # FastStream's per-message lines stay below INFO
    )
    http = await HttpClient(
        SafetyPolicy.from_settings(settings.is_dev, settings.allowed_private_cidrs),
        timeout_s=settings.send_timeout_s,
        max_connections=settings.sender_prefetch,
    ).start()
    sender = DeliverySender(
        repository,
        http,
        BrokerRetryPublisher(broker, topology),
        retry_delay_scale=settings.retry_delay_scale,
        db_backoff=lambda: wait_for_database(pool),
    )
    dead_letters = DeadLetterHandler(repository)

    @broker.subscriber(
        topology.sender_queue, topology.deliveries_exchange, ack_policy=AckPolicy.MANUAL
    )
    async def on_task(message: RabbitMessage) -> None:
        verdict = await sender.handle(message.body, message.headers)
        if verdict is Verdict.REQUEUE:
            await wait_for_database(pool)
        await settle(message, verdict)

    @broker.subscriber(
        topology.dead_deliveries_queue,
        topology.dead_exchange,
        channel=Channel(prefetch_count=DEAD_LETTER_PREFETCH, global_qos=False),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_dead_letter(message: RabbitMessage) -> None:
        verdict = await dead_letters.handle(message.body)
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
    log.info("sender consuming", extra={"queue": topology.sender_queue.name})
    try:
        await wait_for_stop_signal()
        log.info("stopping: finishing in-flight deliveries")
        await stop_consuming(broker)
    finally:
        # Waits for running handlers (graceful_timeout), then closes the channel: anything
        # not acknowledged by then goes back to the queue.
        await broker.stop()
        await http.close()
        await ops.cleanup()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=5.0)
        log.info("sender stopped")


def run() -> None:
    settings = get_settings()
    configure_logging("sender")
    asyncio.run(serve(settings))
