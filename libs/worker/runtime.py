"""The runtime every queue-consuming service shares: broker, database, readiness, shutdown.

Dispatcher and sender differ only in what they do with a message; how they connect, wait
for a restarting Postgres and drain on SIGTERM is the same, and lives here (how they take
and settle messages: consumers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvloop
from aiohttp import web
from faststream.message import StreamMessage
from faststream.rabbit import Channel, RabbitBroker

from libs.infra import telemetry
from libs.infra.db.pool import create_pool
from libs.infra.heap import ClockedCollector, configure_garbage_collector
from libs.infra.logs import configure_logging
from libs.infra.settings import Settings, get_settings
from libs.worker.consumers import ConsumerPause, stop_consuming
from libs.worker.ops_server import start_ops_server

log = logging.getLogger("hookpost.worker")


async def _whole_message(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """Hand the handler the message itself: it parses the body once, itself, and settles it.

    With FastDepends off (`apply_types=False`) FastStream calls the handler with whatever the
    decoder returns; this is how the handler still gets body, headers and ack/nack.
    """
    return message


def build_broker(settings: Settings, prefetch: int) -> RabbitBroker:
    """Confirms on, returns raise, prefetch bounded: SPEC §7's pitfalls, avoided once."""
    return RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(
            prefetch_count=prefetch,
            global_qos=False,  # must stay off on quorum queues
            publisher_confirms=True,
            on_return_raises=True,
        ),
        graceful_timeout=settings.shutdown_grace_s,
        decoder=_whole_message,
        # No dependency injection: FastDepends resolves a `RabbitMessage` Context through a
        # sync field, which it runs in AnyIO's thread pool (plus a task group) for every
        # message, a hop that showed in profiles (BENCHMARKS.md). Handlers take the message
        # as their one argument instead.
        apply_types=False,
        log_level=logging.DEBUG,  # FastStream's per-message lines stay below INFO
    )


async def connect_database(
    dsn: str,
    max_size: int,
    max_wait_s: float = 60.0,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """The pool, waiting (bounded) for a Postgres that is restarting or out of connections."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while True:
        try:
            return await create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                reset_session=False,
                server_settings=server_settings,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if loop.time() > deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc)})
            await asyncio.sleep(1.0)


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


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


class Readiness:
    """What `/readyz` asks: not ready until the service has its broker and database, then
    ready only while both answer."""

    def __init__(self) -> None:
        self._broker: RabbitBroker | None = None
        self._pool: asyncpg.Pool | None = None

    def attach(self, broker: RabbitBroker, pool: asyncpg.Pool) -> None:
        self._broker, self._pool = broker, pool

    async def __call__(self) -> bool:
        if self._broker is None or self._pool is None:
            return False
        if not await self._broker.ping(timeout=1.0):
            return False
        return await asyncio.wait_for(self._pool.fetchval("SELECT 1"), timeout=1.0) == 1


@dataclass
class OpsEndpoints:
    runner: web.AppRunner
    readiness: Readiness
    port: int


async def start_ops(settings: Settings) -> OpsEndpoints:
    """Serve /healthz, /readyz and /metrics from the first moment: a replica still waiting
    for its database is alive (no restart) but not ready."""
    readiness = Readiness()
    runner, port = await start_ops_server(settings.ops_host, settings.ops_port, readiness)
    return OpsEndpoints(runner, readiness, port)


async def run_until_stopped(
    name: str,
    settings: Settings,
    broker: RabbitBroker,
    pool: asyncpg.Pool,
    pause: ConsumerPause,
    on_started: Callable[[], Awaitable[None]] | None = None,
    on_stopped: Callable[[], Awaitable[None]] | None = None,
    ops: OpsEndpoints | None = None,
) -> None:
    """Start consuming and serving ops endpoints; on SIGTERM drain, close, return (exit 0)."""
    await broker.start()
    if ops is None:
        ops = await start_ops(settings)
    ops.readiness.attach(broker, pool)
    if on_started:
        await on_started()
    log.info("consuming", extra={"service": name})
    try:
        await wait_for_stop_signal()
        log.info("stopping: finishing in-flight work", extra={"grace_s": settings.shutdown_grace_s})
        await stop_consuming(broker)
        await pause.close()  # messages held for the database go back to their queue
    finally:
        # Waits for running handlers (graceful_timeout), then closes the channel: anything
        # not acknowledged by then goes back to the queue.
        await broker.stop()
        if on_stopped:
            await on_stopped()
        await ops.runner.cleanup()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=5.0)
        log.info("stopped", extra={"service": name})


def run_worker(name: str, serve: Callable[[Settings], Awaitable[None]]) -> None:
    """A consuming service's process: settings, JSON logs, tracing, then `serve` until SIGTERM.

    On uvloop, as uvicorn already runs the api: the workers' hot loop is socket I/O
    (aio-pika, asyncpg, aiohttp), where the default loop's Python overhead showed in py-spy.
    Its garbage is collected on the loop's clock (libs/infra/heap.py says why).
    """
    settings = get_settings()
    configure_logging(name)
    telemetry.configure_tracing(name)
    configure_garbage_collector()
    uvloop.run(_collecting_on_the_clock(serve(settings)))


async def _collecting_on_the_clock(serving: Awaitable[None]) -> None:
    collector = ClockedCollector()
    collector.start()
    try:
        await serving
    finally:
        collector.stop()
