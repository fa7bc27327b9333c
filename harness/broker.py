"""A broker prefix's objects: publish events onto it as a producer does, peek at a queue,
delete everything the prefix declared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

import aio_pika

from libs.infra.broker.messages import EventMessage, persistent_message
from libs.infra.broker.topology import Topology


class EventPublisher:
    """Events onto `<prefix>.events` like an AMQP producer: persistent, mandatory, confirmed.

    `robust`: reconnect after a broker hiccup and raise on an unroutable event (what a test
    wants); the bench's load generator takes the plain connection it measured with.
    """

    def __init__(self, amqp_url: str, prefix: str, *, robust: bool = False) -> None:
        self._url = amqp_url
        self._exchange_name = Topology(prefix).events_exchange.name
        self._robust = robust
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> Self:
        connect = aio_pika.connect_robust if self._robust else aio_pika.connect
        self._connection = await connect(self._url)
        channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=self._robust
        )
        self._exchange = await channel.get_exchange(self._exchange_name, ensure=True)
        return self

    async def publish(self, event: EventMessage) -> None:
        if self._exchange is None:
            await self.start()
        assert self._exchange is not None
        await self._exchange.publish(
            persistent_message(event.to_bytes(), event.id), routing_key=event.type, mandatory=True
        )

    async def publish_raw(self, body: bytes, routing_key: str, message_id: str) -> None:
        """Any bytes as an event message would travel (a poison corpus: malformed, too big)."""
        if self._exchange is None:
            await self.start()
        assert self._exchange is not None
        message = persistent_message(body, message_id)
        await self._exchange.publish(message, routing_key=routing_key, mandatory=True)

    async def queue_depth(self, queue_name: str, *, missing_ok: bool = False) -> int:
        """Messages ready in a queue (its passive declare's count); 0 for a queue not
        declared (yet) when `missing_ok`."""
        if self._connection is None:
            await self.start()
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(queue_name, passive=True)
            return queue.declaration_result.message_count or 0
        except aio_pika.exceptions.ChannelNotFoundEntity:
            if missing_ok:
                return 0
            raise
        finally:
            if not channel.is_closed:
                await channel.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = self._exchange = None


async def exists(amqp_url: str, kind: str, name: str) -> bool:
    """Whether the queue (`kind` "queue") or exchange of that name is declared."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
            else:
                await channel.declare_exchange(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True


async def delete_queue(amqp_url: str, name: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def delete_broker_objects(
    amqp_url: str, prefix: str, scales: Iterable[float], shards: int = 1
) -> None:
    """Every queue and exchange of `prefix`, at each retry-delay scale it ran with (the
    tiers' queue names carry their delay), sharded or not. Missing ones are skipped."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        seen: set[tuple[str, str]] = set()
        for scale in scales:
            topologies = {Topology(prefix, scale), Topology(prefix, scale, shards)}
            bindings = [b for topology in topologies for b in topology.every_binding()]
            for queue, exchange in bindings:
                for kind, name in (("q", queue.name), ("x", exchange.name)):
                    if (kind, name) in seen:
                        continue
                    seen.add((kind, name))
                    # a failed delete closes its channel: one channel each
                    channel = await connection.channel()
                    try:
                        if kind == "q":
                            await channel.queue_delete(name)
                        else:
                            await channel.exchange_delete(name)
                    except aio_pika.exceptions.AMQPError:
                        pass
                    finally:
                        if not channel.is_closed:
                            await channel.close()
