"""Publishes a failed attempt's task to its retry tier: persistent, mandatory, confirmed.

The trace context rides in the headers like the attempt number: the tier queue keeps them
when its TTL dead-letters the message back to the sender queue, so the next attempt
continues the same trace.
"""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from libs.infra import telemetry
from libs.infra.broker.topology import ATTEMPT_HEADER, SCHEDULE_START_HEADER, Topology
from services.sender import metrics


class BrokerRetryPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._topology = topology
        self._exchange = topology.retry_exchange

    async def publish_retry(
        self, body: bytes, delivery_id: str, delay_s: int, attempt: int, schedule_start: int
    ) -> None:
        routing_key = self._topology.retry_routing_key(delay_s)
        with telemetry.producer_span(
            f"{self._exchange.name} publish",
            self._exchange.name,
            routing_key,
            delivery_id=delivery_id,
            next_attempt=attempt,
            retry_tier_s=delay_s,
        ) as trace_headers:
            # The body never changes between attempts; the attempt number rides in our header.
            await self._broker.publish(
                body,
                exchange=self._exchange,
                routing_key=routing_key,
                persist=True,
                mandatory=True,
                headers={
                    ATTEMPT_HEADER: attempt,
                    SCHEDULE_START_HEADER: schedule_start,
                    **trace_headers,
                },
                message_id=delivery_id,
                content_type="application/json",
            )
        metrics.RETRY_PUBLISHES.labels(tier=f"{delay_s}s").inc()
