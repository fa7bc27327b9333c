"""A queue consumed as a worker consumes one (libs/worker/consumers.py), and messages
published to it, on the real RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue

from libs.worker.consumers import ConsumerPause, MessageHandler, consume


async def consuming(broker: RabbitBroker, queue_name: str, handle: MessageHandler) -> None:
    """`handle` takes the queue's messages through `consume`, from the broker started here."""
    queue = RabbitQueue(queue_name, durable=True)
    consume(broker, queue, RabbitExchange(""), handle, ConsumerPause(broker, None))  # type: ignore[arg-type]
    await broker.start()


async def publish(amqp_url: str, queue_name: str, messages: Iterable[aio_pika.Message]) -> None:
    """Each message to the queue, in order, each confirmed."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for message in messages:
            await channel.default_exchange.publish(message, queue_name)
