"""Publishes a failed attempt's next step to its retry tier: persistent, mandatory, confirmed.

The trace context rides in the headers like the attempt number: the tier queue keeps them
when its TTL dead-letters the message back to the sender queue, so the next attempt
continues the same trace.
"""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from libs.delivery.metrics import EngineMetrics
from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryStep
from libs.infra.broker.topology import Topology


class BrokerRetryPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology, metrics: EngineMetrics) -> None:
        self._broker = broker
        self._topology = topology
        self._exchange = topology.retry_exchange
        self._metrics = metrics

    async def publish_retry(self, step: DeliveryStep, delay_s: int) -> None:
        routing_key = self._topology.retry_routing_key(delay_s)
        with telemetry.producer_span(
            f"{self._exchange.name} publish",
            self._exchange.name,
            routing_key,
            delivery_id=step.task.delivery_id,
            next_attempt=step.attempt,
            retry_tier_s=delay_s,
        ) as trace_headers:
            # The body never changes between attempts; the attempt number rides in our header.
            await self._broker.publish(
                step.task.to_bytes(),
                exchange=self._exchange,
                routing_key=routing_key,
                persist=True,
                mandatory=True,
                headers={**step.headers(), **trace_headers},
                message_id=step.task.delivery_id,
                content_type="application/json",
            )
        self._metrics.retry_published(delay_s)
