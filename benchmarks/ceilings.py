"""Ceilings measured in the same run as the pipeline: what the bare components can do here."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from multiprocessing.connection import Connection

import aio_pika
import aiohttp
import asyncpg
import uvloop
from aiohttp import web

from benchmarks.common import ack_all
from libs.domain.ids import IdPrefix, new_id

PAYLOAD_1KB = b"x" * 1024


async def broker_round_trips_per_s(amqp_url: str, messages: int = 20_000) -> float:
    """aio-pika publish with confirms + consume with ack, 1 KB persistent, quorum queue.

    The consumer runs in its own process, as the dispatcher consumes what the api publishes:
    in one process both halves shared one core and the figure was that core's, not the
    broker's (2,736 against 4,188 round trips/s, measured back to back, session 8).
    """
    name = f"bench.ceiling.{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    consumer = spawn.Process(
        target=_consume_in_own_process, args=(amqp_url, name, messages, theirs)
    )
    consumer.start()
    try:
        if await asyncio.to_thread(ours.recv) != "consuming":
            raise RuntimeError("the ceiling's consumer did not start")
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            window = asyncio.Semaphore(500)  # in-flight confirms, like a real publisher

            async def publish_one() -> None:
                async with window:
                    await channel.default_exchange.publish(
                        aio_pika.Message(
                            PAYLOAD_1KB, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        routing_key=name,
                    )

            started = time.time()
            await asyncio.gather(*(publish_one() for _ in range(messages)))
            last_ack: float = await asyncio.to_thread(ours.recv)
            await channel.queue_delete(name)
    finally:
        await asyncio.to_thread(consumer.join, 30)
        if consumer.is_alive():
            consumer.kill()
    return messages / (last_ack - started)


def _consume_in_own_process(amqp_url: str, name: str, messages: int, report: Connection) -> None:
    """Declare the queue, say "consuming", ack `messages` messages, send the last ack's time."""

    async def consume() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            queue = await channel.declare_queue(
                name, durable=True, arguments={"x-queue-type": "quorum"}
            )
            done = await ack_all(queue, messages)
            report.send("consuming")
            await done.wait()
            report.send(time.time())

    uvloop.run(consume())


async def start_counting_receiver(delay_s: float = 0.0) -> tuple[web.AppRunner, str, list[float]]:
    """The receiver every benchmark POSTs to: counts arrivals with their time."""
    arrivals: list[float] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.time())
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook", arrivals


async def http_posts_per_s(url: str, requests: int = 20_000, in_flight: int = 100) -> float:
    """aiohttp POSTs of a 1 KB body against the pipeline's receiver."""
    window = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post_one() -> None:
            async with window, session.post(url, data=PAYLOAD_1KB) as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(post_one() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


async def postgres_inserts_per_s(dsn: str, rows: int = 5_000) -> dict[str, float]:
    """Single-row INSERTs and one batched unnest INSERT of delivery-shaped rows."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TEMP TABLE bench_deliveries (id text PRIMARY KEY, event_id text, "
            "endpoint_id text, organization_id text, status text, attempt_count int, "
            "created_at timestamptz DEFAULT now())"
        )
        sql = (
            "INSERT INTO bench_deliveries (id, event_id, endpoint_id, organization_id, status, "
            "attempt_count) VALUES ($1, $2, $3, $4, 'PENDING', 0)"
        )
        started = time.perf_counter()
        for _ in range(rows):
            await conn.execute(sql, new_id(IdPrefix.DELIVERY), "evt_x", "sub_x", "org_x")
        single = rows / (time.perf_counter() - started)

        ids = [new_id(IdPrefix.DELIVERY) for _ in range(rows * 4)]
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO bench_deliveries (id, event_id, endpoint_id, organization_id, status, "
            "attempt_count) SELECT id, 'evt_y', 'sub_y', 'org_y', 'PENDING', 0 "
            "FROM unnest($1::text[]) AS id",
            ids,
        )
        batched = len(ids) / (time.perf_counter() - started)
    finally:
        await conn.close()
    return {"single_row": single, "batched": batched}
