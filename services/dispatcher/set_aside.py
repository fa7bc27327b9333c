"""A batch message's bad events (libs/infra/broker/messages.py), each published alone to
`<prefix>.events`: the dispatcher then rejects it as it rejects any bad single message, so
it is dead-lettered and kept as poison, replayable on its own (libs/worker/poison.py), while
the batch's good events are delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker

from libs.infra.broker.messages import BATCH_ROUTING_KEY, persistent_message
from libs.infra.broker.topology import Topology


class SetAside:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._topology = topology
        self._exchange: AbstractExchange | None = None

    async def __call__(self, items: Sequence[Any]) -> None:
        """Every item published, mandatory and confirmed, or an exception."""
        if self._exchange is None:
            self._exchange = await self._broker.declare_exchange(self._topology.events_exchange)
        exchange = self._exchange
        await asyncio.gather(
            *(
                exchange.publish(
                    persistent_message(orjson.dumps(item), _text(item, "id")),
                    _text(item, "type") or BATCH_ROUTING_KEY,
                    mandatory=True,
                )
                for item in items
            )
        )


def _text(item: Any, name: str) -> str | None:
    value = item.get(name) if isinstance(item, dict) else None
    return value if isinstance(value, str) else None
