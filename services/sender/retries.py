"""Publishes a failed attempt's task to its retry tier: persistent, mandatory, confirmed."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from libs.common.broker.topology import ATTEMPT_HEADER, SCHEDULE_START_HEADER, Topology


class BrokerRetryPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._topology = topology
        self._exchange = topology.retry_exchange

    async def publish_retry(
        self, body: bytes, delivery_id: str, delay_s: int, attempt: int, schedule_start: int
    ) -> None:
        # The body never changes between attempts; the attempt number rides in our header.
        await self._broker.publish(
            body,
            exchange=self._exchange,
            routing_key=self._topology.retry_routing_key(delay_s),
            persist=True,
            mandatory=True,
            headers={ATTEMPT_HEADER: attempt, SCHEDULE_START_HEADER: schedule_start},
            message_id=delivery_id,
            content_type="application/json",
        )
