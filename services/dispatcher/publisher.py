"""Publishes delivery tasks to `<prefix>.deliveries`: persistent, mandatory, confirmed.

A task goes out either as a first attempt, or (an event's recovery, handler.py) as the step
a delivery was at: the sender then POSTs that attempt, or, finding it already recorded,
redoes only what follows it.

Straight on the broker's aio-pika exchange (its channel has publisher confirms and raises on
returns): FastStream's `broker.publish` added a producer, context scopes and middlewares per
task, which py-spy put at ~30 % of the dispatcher's main thread at fan-out 10 (BENCHMARKS.md).
All of an event's tasks go out back to back and their confirms are awaited together, so a
fan-out of N costs one confirm wait, not N in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker

from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryTask, persistent_message
from libs.infra.broker.topology import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    SEND_ROUTING_KEY,
    Topology,
)


@dataclass(frozen=True)
class TaskStep:
    """A task and the attempt it is at (1 for a first attempt; schedule_start: SPEC retry)."""

    task: DeliveryTask
    attempt: int = 1
    schedule_start: int = 1

    def headers(self) -> dict[str, int]:
        """The step as the sender reads it from a message (ours, not `x-…`: SPEC §7)."""
        return {ATTEMPT_HEADER: self.attempt, SCHEDULE_START_HEADER: self.schedule_start}


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

    async def publish_steps(self, steps: Sequence[TaskStep]) -> None:
        """Publish every step and wait for every confirm; raises if any was not confirmed."""
        exchange = await self._target()
        await asyncio.gather(*(self._publish(exchange, step) for step in steps))

    async def _publish(self, exchange: AbstractExchange, step: TaskStep) -> None:
        task = step.task
        with telemetry.producer_span(
            f"{self._exchange.name} publish",
            self._exchange.name,
            SEND_ROUTING_KEY,
            delivery_id=task.delivery_id,
            endpoint_id=task.endpoint_id,
        ) as trace_headers:
            message = persistent_message(
                task.to_bytes(),
                task.delivery_id,
                {**step.headers(), **trace_headers},
            )
            await exchange.publish(message, routing_key=SEND_ROUTING_KEY, mandatory=True)
