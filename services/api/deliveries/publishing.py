"""Putting one delivery task on the deliveries exchange: the one way the API does it."""

from __future__ import annotations

from libs.infra.broker.messages import DeliveryTask
from libs.infra.broker.topology import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    SEND_ROUTING_KEY,
    Topology,
)
from services.api.broker import BrokerLink


async def publish_delivery_task(
    broker: BrokerLink, topology: Topology, task: DeliveryTask, attempt: int, schedule_start: int
) -> None:
    """Publish persistently with confirms; raise BrokerUnavailable when not confirmed.

    The attempt number travels in our own header (x-* headers belong to the broker), and
    `schedule_start` tells the sender which attempt opened the current retry schedule.
    """
    await broker.publish(
        task.to_bytes(),
        exchange=topology.deliveries_exchange,
        routing_key=SEND_ROUTING_KEY,
        message_id=task.delivery_id,
        headers={ATTEMPT_HEADER: attempt, SCHEDULE_START_HEADER: schedule_start},
    )
