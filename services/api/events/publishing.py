"""Putting an outbox event on the broker: the message, its routing, the published_at mark."""

from __future__ import annotations

import logging

import asyncpg

from libs.common import telemetry
from libs.common.broker.messages import EventMessage
from libs.common.broker.topology import Topology
from services.api.broker import BrokerLink, BrokerUnavailable
from services.api.events import repository
from services.api.metrics import EVENTS_PUBLISHED, PUBLISH_FAILURES

log = logging.getLogger("hookpost.api.outbox")


def to_message(record: asyncpg.Record) -> EventMessage:
    return EventMessage(
        id=record["id"],
        organization_id=record["organization_id"],
        type=record["type"],
        data=record["data"],
        created_at=record["created_at"],
        target_endpoint_id=record["target_endpoint_id"],
        target_delivery_id=record["target_delivery_id"],
    )


async def publish_event(
    broker: BrokerLink,
    topology: Topology,
    message: EventMessage,
    trace_context: dict[str, str] | None = None,
) -> None:
    """Publish with confirms (routing key = event type); raise BrokerUnavailable otherwise.

    `trace_context`: the one stored with the event, so a relayed publish, seconds or hours
    later, still continues the trace of the request that accepted the event.
    """
    exchange = topology.events_exchange
    with telemetry.producer_span(
        f"{exchange.name} publish",
        exchange.name,
        message.type,
        parent=trace_context,
        event_id=message.id,
        organization_id=message.organization_id,
    ) as trace_headers:
        await broker.publish(
            message.to_bytes(),
            exchange=exchange,
            routing_key=message.type,
            message_id=message.id,
            headers=trace_headers,
        )


async def publish_now(
    pool: asyncpg.Pool, broker: BrokerLink, topology: Topology, record: asyncpg.Record
) -> bool:
    """Try to publish a just-stored event; on failure the relay will (the row is safe)."""
    try:
        await publish_event(broker, topology, to_message(record), record["trace_context"])
    except BrokerUnavailable as exc:
        PUBLISH_FAILURES.labels(what="event").inc()
        log.warning(
            "event left for the outbox relay", extra={"event_id": record["id"], "error": str(exc)}
        )
        return False
    EVENTS_PUBLISHED.labels(path="inline").inc()
    try:
        await repository.mark_published(pool, [record["id"]])
    except Exception:
        # Published but not marked: the relay sends it again; the dispatcher is idempotent.
        log.exception("could not mark event published", extra={"event_id": record["id"]})
    return True
