"""Publishes delivery steps to `<prefix>.deliveries`: persistent, mandatory, confirmed.

A step goes out either as a first attempt, or (an event's recovery, handler.py) as the step
a delivery was at: the sender then POSTs that attempt, or, finding it already recorded,
redoes only what follows it.

Straight on the broker's aio-pika exchange (its channel has publisher confirms and raises on
returns): FastStream's `broker.publish` adds a producer, context scopes and middlewares per
task, more than the publish itself (BENCHMARKS.md).
All of an event's steps go out back to back and their confirms are awaited together, so a
fan-out of N costs one confirm wait, not N in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker

from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryStep
from libs.infra.broker.topology import SEND_ROUTING_KEY, Topology


class DeliveryPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._exchange = topology.deliveries_exchange
        self._declared: AbstractExchange | None = None

    async def _target(self) -> AbstractExchange:
        # A robust exchange on the broker's default channel: it survives reconnects.
        if self._declared is None:
            self._declared = await self._broker.declare_exchange(self._exchange)
        return self._declared

    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None:
        """Publish every step and wait for every confirm; raises if any was not confirmed."""
        exchange = await self._target()
        await asyncio.gather(*(self._publish(exchange, step) for step in steps))

    async def _publish(self, exchange: AbstractExchange, step: DeliveryStep) -> None:
        with telemetry.producer_span(
            f"{self._exchange.name} publish",
            self._exchange.name,
            SEND_ROUTING_KEY,
            delivery_id=step.task.delivery_id,
            endpoint_id=step.task.endpoint_id,
        ) as trace_headers:
            await exchange.publish(
                step.message(trace_headers), routing_key=SEND_ROUTING_KEY, mandatory=True
            )
