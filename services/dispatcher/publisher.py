"""Publishes delivery tasks to `<prefix>.deliveries`: persistent, mandatory, confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.rabbit import RabbitBroker

from libs.common import telemetry
from libs.common.broker.messages import DeliveryTask
from libs.common.broker.topology import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    SEND_ROUTING_KEY,
    Topology,
)

FIRST_ATTEMPT_HEADERS = {ATTEMPT_HEADER: 1, SCHEDULE_START_HEADER: 1}


class DeliveryPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._exchange = topology.deliveries_exchange

    async def publish_first_attempts(self, tasks: Sequence[DeliveryTask]) -> None:
        """Publish every task and wait for every confirm; raises if any was not confirmed."""
        await asyncio.gather(*(self._publish(task) for task in tasks))

    async def _publish(self, task: DeliveryTask) -> None:
        with telemetry.producer_span(
            f"{self._exchange.name} publish",
            self._exchange.name,
            SEND_ROUTING_KEY,
            delivery_id=task.delivery_id,
            endpoint_id=task.endpoint_id,
        ) as trace_headers:
            await self._broker.publish(
                task.to_bytes(),
                exchange=self._exchange,
                routing_key=SEND_ROUTING_KEY,
                persist=True,
                mandatory=True,
                headers={**FIRST_ATTEMPT_HEADERS, **trace_headers},
                message_id=task.delivery_id,
                content_type="application/json",
            )
