"""The broker topology, declared on the real RabbitMQ: TTL tiers really dead-letter back."""

from __future__ import annotations

import asyncio
import time

import aio_pika
from faststream.rabbit import RabbitBroker

from libs.infra.broker.topology import SEND_ROUTING_KEY, Topology, declare_topology


async def test_retry_tier_returns_the_message_to_the_sender_queue_after_its_ttl(
    test_env: dict[str, str],
) -> None:
    topology = Topology(test_env["HOOKPOST_BROKER_PREFIX"] + "_topo", retry_delay_scale=0.01)
    broker = RabbitBroker(test_env["HOOKPOST_AMQP_URL"])
    await broker.connect()
    try:
        await declare_topology(broker, topology)
        await declare_topology(broker, topology)  # idempotent
        connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            retry = await channel.get_exchange(topology.retry_exchange.name)
            sent_at = time.monotonic()
            await retry.publish(
                aio_pika.Message(b"task", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=topology.retry_routing_key(60),  # 60 s x 0.01 = 600 ms
                mandatory=True,
            )
            sender_queue = await channel.get_queue(topology.sender_queue.name)
            message = None
            while message is None and time.monotonic() - sent_at < 10:
                message = await sender_queue.get(fail=False)
                await asyncio.sleep(0.05)
            assert message is not None, "the retry tier never dead-lettered back"
            waited = time.monotonic() - sent_at
            assert 0.55 <= waited < 3.0
            assert message.body == b"task"
            assert message.routing_key == SEND_ROUTING_KEY
            await message.ack()
            for queue, _ in topology.bindings():
                await channel.queue_delete(queue.name)
    finally:
        await broker.stop()


def test_every_name_carries_the_prefix_and_tiers_carry_their_scaled_ttl() -> None:
    topology = Topology("px", retry_delay_scale=0.01)
    names = [q.name for q, _ in topology.bindings()] + [e.name for _, e in topology.bindings()]
    assert all(name.startswith("px.") for name in names)
    assert [q.name for q in topology.retry_queues()] == [
        "px.retry.10ms",
        "px.retry.50ms",
        "px.retry.300ms",
        "px.retry.600ms",
        "px.retry.3000ms",
        "px.retry.18000ms",
        "px.retry.36000ms",
    ]
    assert topology.sender_queue.arguments["x-queue-type"] == "quorum"
