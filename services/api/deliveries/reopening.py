"""Reopening deliveries by hand (a retry, a recover): the one way the api does it.

Each goes back with a fresh retry schedule from its next attempt and its original eventId.
A delivery of an ordered line (it carries an ordering key) keeps its line's order: it waits
HELD behind the line's head and is released in event order when the head ends; it goes now
only when its line has no head (libs/delivery/ordering.py `rejoin`, under the lines' locks).

What goes now is published with confirms inside the caller's transaction, so its status
change commits only once the broker took its task: a task that never left never leaves a
delivery PENDING (a BrokerUnavailable raised here rolls the caller's changes back). A
release may also promote another delivery of a line (an earlier HELD one whose own release
was lost): that one is PENDING only once the caller commits, so its step is handed back for
`publish_released`, after the commit, as every release publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from libs.delivery import ordering
from libs.infra.broker.messages import DeliveryStep, DeliveryTask
from libs.infra.broker.topology import Topology
from services.api.broker import BrokerLink
from services.api.deliveries import repository
from services.api.deliveries.publishing import publish_delivery_step

log = logging.getLogger("hookpost.api.deliveries")


async def reopen(
    conn: asyncpg.Connection,
    broker: BrokerLink,
    topology: Topology,
    payload_cap_bytes: int,
    rows: Sequence[asyncpg.Record],
) -> list[DeliveryStep]:
    """Reopen these deliveries (locked by the caller's transaction, with their events'
    columns and `ordering_key`) and publish what goes now; returns the steps to publish
    once the transaction has committed. Raises BrokerUnavailable when not confirmed."""
    await repository.reopen_many(
        conn, [row["id"] for row in rows], [row["event_id"] for row in rows]
    )
    unordered = [row for row in rows if row["ordering_key"] is None]
    steps = []
    for row in unordered:
        attempt = row["attempt_count"] + 1  # a new schedule starts at the next attempt
        steps.append(DeliveryStep(DeliveryTask.from_row(row, payload_cap_bytes), attempt, attempt))
    in_line = [
        ordering.Reopened(row["id"], row["event_id"], row["endpoint_id"], row["ordering_key"])
        for row in rows
        if row["ordering_key"] is not None
    ]
    mine = {each.delivery_id for each in in_line}
    released: list[DeliveryStep] = []
    if in_line:
        for step in await ordering.rejoin(conn, in_line, payload_cap_bytes):
            (steps if step.task.delivery_id in mine else released).append(step)
    await asyncio.gather(*(publish_delivery_step(broker, topology, step) for step in steps))
    return released


async def publish_released(
    broker: BrokerLink, topology: Topology, steps: Sequence[DeliveryStep]
) -> None:
    """Publish what a release promoted, after its commit. A step that does not leave is
    only logged: its delivery is PENDING and due, so the reconciler re-drives it."""
    for step in steps:
        try:
            await publish_delivery_step(broker, topology, step)
        except Exception:
            log.exception("could not publish a released delivery; the reconciler will")
