"""Remove a test run's queues and exchanges so runs do not pile up on the shared broker."""

from __future__ import annotations

import asyncio

import aio_pika

from libs.infra.broker.topology import Topology


def delete_prefixed_objects(amqp_url: str, prefix: str) -> None:
    async def delete() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            topology = Topology(prefix, retry_delay_scale=0.01)
            for queue, exchange in topology.bindings():
                channel = await connection.channel()
                try:
                    await channel.queue_delete(queue.name)
                    await channel.exchange_delete(exchange.name)
                except aio_pika.exceptions.AMQPError:
                    pass  # already gone

    asyncio.run(delete())
