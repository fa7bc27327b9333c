"""What the dispatcher does with one event message, independent of the broker client.

`Dispatcher.handle` answers a Verdict; the consumer in main.py turns it into ack / reject /
nack. Nothing here acknowledges anything, so the logic is testable with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from libs.common import telemetry
from libs.common.broker.messages import DeliveryTask, EventMessage
from libs.common.envelope import capped_data
from libs.common.event_types import EventType, allowed_for
from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from libs.common.worker import Verdict
from services.dispatcher import metrics
from services.dispatcher.repository import EventContext, PendingDelivery

log = logging.getLogger("hookpost.dispatcher")


class EventLock(Protocol):
    async def prepare(self, event: EventMessage, pending_limit: int) -> EventContext | None: ...

    async def insert_deliveries(
        self, organization_id: str, delivery_ids: list[str], endpoint_ids: list[str]
    ) -> list[PendingDelivery] | None: ...

    async def mark_dispatched(self) -> None: ...

    async def __aenter__(self) -> EventLock: ...

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None: ...


class Repository(Protocol):
    async def drop(self, event_id: str, hour: str) -> int | None: ...

    def event_lock(self, event_id: str) -> EventLock: ...


class Publisher(Protocol):
    async def publish_first_attempts(self, tasks: Sequence[DeliveryTask]) -> None: ...


def plan_allows(plan: str, event_type: str) -> bool:
    """The dispatcher's own plan gate; an unknown type or plan is never delivered."""
    try:
        return allowed_for(Plan(plan), EventType(event_type))
    except ValueError:
        return False


class Dispatcher:
    def __init__(
        self,
        repository: Repository,
        publisher: Publisher,
        *,
        pending_limit: int,
        payload_cap_bytes: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repository
        self._publisher = publisher
        self._pending_limit = pending_limit
        self._payload_cap = payload_cap_bytes
        self._now = now

    async def handle(self, body: bytes) -> Verdict:
        try:
            event = EventMessage.model_validate_json(body)
        except ValidationError as exc:
            log.warning("malformed event message", extra={"error": str(exc)[:500]})
            metrics.EVENTS.labels("rejected").inc()
            return Verdict.REJECT
        ids = {"event_id": event.id, "organization_id": event.organization_id}
        telemetry.annotate(**ids)
        try:
            verdict = await self._dispatch(event, ids)
        except Exception:
            # Postgres or the broker failed mid-way: nothing was marked dispatched, so a
            # redelivery redoes it (the delivery limit dead-letters a message that never works).
            log.exception("dispatch failed, requeueing", extra=ids)
            metrics.EVENTS.labels("requeued").inc()
            return Verdict.REQUEUE
        return verdict

    async def _dispatch(self, event: EventMessage, ids: dict[str, str]) -> Verdict:
        # The event's lock is taken by the same statement that stores and reads the event.
        async with self._repo.event_lock(event.id) as lock:
            return await self._dispatch_locked(event, ids, lock)

    async def _dispatch_locked(
        self, event: EventMessage, ids: dict[str, str], lock: EventLock
    ) -> Verdict:
        ctx = await lock.prepare(event, self._pending_limit)
        if ctx is None:
            log.warning("event for an unknown organization, dead-lettering", extra=ids)
            metrics.EVENTS.labels("rejected").inc()
            return Verdict.REJECT
        if (
            ctx.stored_organization_id is not None
            and ctx.stored_organization_id != event.organization_id
        ):
            log.warning("event id belongs to another organization, dead-lettering", extra=ids)
            metrics.EVENTS.labels("rejected").inc()
            return Verdict.REJECT
        if ctx.dispatched_at is not None:
            log.info("duplicate event message ignored", extra=ids)
            metrics.EVENTS.labels("duplicate").inc()
            return Verdict.ACK

        # A /test call's single event is exempt: its caller already holds the delivery id.
        if event.target_endpoint_id is None and ctx.pending > self._pending_limit:
            hour = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H")
            total = await self._repo.drop(event.id, hour)
            if total is not None:
                metrics.EVENTS_DROPPED_BACKPRESSURE.inc()
                log.warning(
                    "event dropped: too many pending deliveries",
                    extra={**ids, "dropped_this_hour": total, "hour": hour},
                )
            metrics.EVENTS.labels("dropped").inc()
            return Verdict.ACK

        endpoint_ids = ctx.endpoint_ids if plan_allows(ctx.plan, event.type) else []
        if event.target_endpoint_id is not None:
            delivery_ids = [event.target_delivery_id or new_id(IdPrefix.DELIVERY)] * len(
                endpoint_ids
            )
        else:
            delivery_ids = [new_id(IdPrefix.DELIVERY) for _ in endpoint_ids]

        pending = await lock.insert_deliveries(event.organization_id, delivery_ids, endpoint_ids)
        if pending is None:
            log.info("duplicate event message ignored", extra=ids)
            metrics.EVENTS.labels("duplicate").inc()
            return Verdict.ACK
        if pending:
            data = capped_data(
                event.id, event.type, event.created_at, event.data, self._payload_cap
            )
            await self._publisher.publish_first_attempts(
                [
                    DeliveryTask(
                        delivery_id=delivery.id,
                        event_id=event.id,
                        endpoint_id=delivery.endpoint_id,
                        organization_id=event.organization_id,
                        type=event.type,
                        event_created_at=event.created_at,
                        data=data,
                    )
                    for delivery in pending
                ]
            )
        await lock.mark_dispatched()
        metrics.EVENTS.labels("dispatched").inc()
        metrics.DELIVERIES_PUBLISHED.inc(len(pending))
        log.info("event dispatched", extra={**ids, "deliveries": len(pending)})
        return Verdict.ACK
