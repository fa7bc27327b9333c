"""Seeing what the api puts on the broker: an exclusive queue bound where its messages go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
import orjson

from libs.infra.broker.messages import batch_items, is_batch


async def bind_probe_queue(
    channel: aio_pika.abc.AbstractChannel, exchange: str, routing_key: str
) -> aio_pika.abc.AbstractQueue:
    """An exclusive queue seeing what the exchange routes with this key (test-only copy)."""
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key=routing_key)
    return queue


async def next_message(
    queue: aio_pika.abc.AbstractQueue,
    match: Callable[[aio_pika.abc.AbstractIncomingMessage], bool],
    timeout: float = 10.0,
) -> aio_pika.abc.AbstractIncomingMessage:
    """The first message on the queue that matches (others are skipped); fail on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        if match(message):
            return message
    raise AssertionError(f"no matching message on {queue.name} within {timeout}s")


def event_ids_of(message: aio_pika.abc.AbstractIncomingMessage) -> list[str]:
    """The events a message of the events exchange carries: one, or a batch's (the api
    publishes the events of requests stored together as one message)."""
    body = message.body
    return [item["id"] for item in (batch_items(body) if is_batch(body) else [orjson.loads(body)])]


async def messages_for(queue: aio_pika.abc.AbstractQueue, seconds: float) -> list[list[str]]:
    """Every message on the queue for `seconds`: the event ids of each."""
    messages: list[list[str]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            messages.append(event_ids_of(message))
    return messages
