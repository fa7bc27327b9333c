"""Putting one delivery step on the deliveries exchange: the one way the API does it."""

from __future__ import annotations

from libs.infra.broker.messages import DeliveryStep
from libs.infra.broker.topology import SEND_ROUTING_KEY, Topology
from services.api.broker import BrokerLink


async def publish_delivery_step(broker: BrokerLink, topology: Topology, step: DeliveryStep) -> None:
    """Publish persistently with confirms; raise BrokerUnavailable when not confirmed."""
    await broker.publish(
        step.task.to_bytes(),
        exchange=topology.deliveries_exchange,
        routing_key=SEND_ROUTING_KEY,
        message_id=step.task.delivery_id,
        headers=step.headers(),
    )
