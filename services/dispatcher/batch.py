"""One batch of event messages dispatched with one statement per step for all of them
(repository.py): prepare + lock, drop what is over the backpressure limit, insert the
deliveries (which also marks dispatched the events that need no confirm first), publish what
goes to the sender queue, then finish (mark + unlock) the others. Each event still gets its
own Result: one event's failed publish requeues that event only. A batch with keyed events
for ordered endpoints then releases their keys' lines (libs/delivery/ordering.py, where the
deliveries inserted HELD are decided); a batch without any runs nothing more.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.domain import plan_gate
from libs.domain.envelope import capped_data
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import DeliveryStep, DeliveryTask, EventMessage
from services.dispatcher.outcomes import (
    BUSY,
    DUPLICATE,
    REJECTED_FOREIGN_ID,
    REJECTED_UNKNOWN_ORG,
    Outcome,
    Result,
)
from services.dispatcher.ports import (
    EventLocks,
    FirstAttemptsHere,
    LineReleases,
    Publisher,
    Repository,
)
from services.dispatcher.rows import (
    EventContext,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
)

log = logging.getLogger("hookpost.dispatcher")


@dataclass(frozen=True)
class Submitted:
    """One message's event, and its context: the message's span parents the event's
    publishes, and its log context the lines about it, whichever task runs the batch.
    `message` stands for the message: the events of one share its first-attempt room."""

    event: EventMessage
    context: contextvars.Context
    message: object


@dataclass(frozen=True)
class BatchDispatcher:
    repository: Repository
    publisher: Publisher
    first_attempts: FirstAttemptsHere | None  # None: every task goes to the sender queue
    pending_limit: int  # PENDING + HELD deliveries per org above which its events are dropped
    payload_cap_bytes: int
    now: Callable[[], datetime]
    releases: LineReleases | None = None  # None: no ordered delivery (unit tests)

    async def dispatch(self, batch: Sequence[Submitted], *, wait: bool) -> list[Result]:
        """Dispatch the events of a batch (distinct ids), one statement per step for all."""
        results: list[Result | None] = [None] * len(batch)
        async with self.repository.event_locks(wait=wait) as locks:
            contexts = await locks.prepare([each.event for each in batch], self.pending_limit)
            to_drop: list[int] = []
            to_deliver: list[int] = []
            for index, (submitted, ctx) in enumerate(zip(batch, contexts, strict=True)):
                early = _settled_by_prepare(submitted.event, ctx)
                if early is not None:
                    results[index] = early
                elif self._over_limit(submitted.event, ctx):
                    to_drop.append(index)
                else:
                    to_deliver.append(index)
            if to_drop:
                await self._drop(locks, batch, to_drop, results)
            if to_deliver:
                await self._deliver(locks, batch, contexts, to_deliver, results)
        settled = [result for result in results if result is not None]
        assert len(settled) == len(batch), "every event of the batch gets a result"
        await self._release_lines(batch, contexts, settled)
        return settled

    async def _release_lines(
        self,
        batch: Sequence[Submitted],
        contexts: list[EventContext | None],
        results: list[Result],
    ) -> None:
        """Once a keyed event is dispatched (or dropped), the lines of its key may move: its
        own HELD deliveries, and later events' it was holding back (ordering.py). A failure
        here fails no event: the reconciler releases a line left without a head."""
        keys: set[tuple[str, str]] = {
            (submitted.event.organization_id, submitted.event.ordering_key)
            for submitted, ctx, result in zip(batch, contexts, results, strict=True)
            if submitted.event.ordering_key is not None
            and ctx is not None
            and ctx.ordered_endpoint_ids
            and result.outcome in (Outcome.DISPATCHED, Outcome.DROPPED)
        }
        await self.release_keys(keys)

    async def release_keys(self, keys: set[tuple[str, str]]) -> None:
        """Release the lines of these (organization, ordering key) pairs and publish what
        goes; a failure is logged only (the reconciler releases a line left headless)."""
        if not keys or self.releases is None:
            return
        try:
            steps = await self.releases.release_keys(keys)
            if steps:
                await self.publisher.publish_steps(steps)
        except Exception:
            log.exception("could not release ordered deliveries; the reconciler will")

    def _over_limit(self, event: EventMessage, ctx: EventContext | None) -> bool:
        # A /test call's single event is exempt: its caller already holds the delivery id.
        # An event addressed to one endpoint without one (a report job's outcome) is not.
        assert ctx is not None
        return event.target_delivery_id is None and ctx.pending > self.pending_limit

    async def _drop(
        self,
        locks: EventLocks,
        batch: Sequence[Submitted],
        indexes: list[int],
        results: list[Result | None],
    ) -> None:
        hour = self.now().astimezone(UTC).strftime("%Y-%m-%dT%H")
        counted = await locks.drop([batch[i].event.id for i in indexes], hour)
        for i in indexes:
            results[i] = Result(
                Outcome.DROPPED,
                "event dropped: too many pending deliveries",
                dropped_this_hour=counted.get(batch[i].event.id),
                hour=hour,
            )

    async def _deliver(
        self,
        locks: EventLocks,
        batch: Sequence[Submitted],
        contexts: list[EventContext | None],
        indexes: list[int],
        results: list[Result | None],
    ) -> None:
        planned = [_planned(batch[i].event, contexts[i]) for i in indexes]
        # An event with nothing to deliver, or room here for every first attempt it plans,
        # is marked dispatched by the deliveries statement itself: none of its tasks has to
        # be confirmed before the mark (a redelivered copy recovers attempts that do not
        # settle). The others are marked by `finish`, once each of their tasks is confirmed.
        room = {
            i: len(each.endpoint_ids)
            for i, each in zip(indexes, planned, strict=True)
            if not each.endpoint_ids or self._reserve(len(each.endpoint_ids), batch[i])
        }
        try:
            pending = await locks.insert_deliveries(
                planned, finished=[batch[i].event.id for i in room]
            )
        except BaseException:
            self._release((n, batch[i]) for i, n in room.items())
            raise
        publishing: list[tuple[int, list[DeliveryTask]]] = []
        here: dict[int, list[DeliveryTask]] = {}  # first attempts POSTed by this replica
        to_finish: list[int] = []  # not marked yet: once their tasks are confirmed
        for i in indexes:
            deliveries = pending[batch[i].event.id]
            reserved = room.get(i, 0)
            if reserved and (deliveries is None or len(deliveries) != reserved):
                # The statement found other deliveries than planned (an earlier run's).
                self._release([(reserved, batch[i])])
                reserved = 0
            if deliveries is None:
                results[i] = DUPLICATE  # dispatched meanwhile (the stale snapshot's case)
                continue
            if i not in room:
                to_finish.append(i)
            if not deliveries:
                continue
            tasks = delivery_tasks(batch[i].event, deliveries, self.payload_cap_bytes)
            if reserved or self._reserve(len(deliveries), batch[i]):
                here[i] = tasks
            else:
                publishing.append((i, tasks))
        try:
            unconfirmed = await self._publish(batch, publishing, results)
            to_finish = [i for i in to_finish if i not in unconfirmed]
            if to_finish:
                # Only after every task of these events was confirmed; releases the locks
                # too. The first attempts made here start after this commit (their event's
                # message stays unacknowledged until they are settled).
                await locks.finish([batch[i].event.id for i in to_finish])
        except BaseException:
            self._release((len(tasks), batch[i]) for i, tasks in here.items())
            raise
        for i in indexes:
            if results[i] is None:
                results[i] = Result(
                    Outcome.DISPATCHED,
                    "event dispatched",
                    deliveries=len(pending[batch[i].event.id] or []),
                    first_attempts=tuple(here.get(i, ())),
                )

    def _reserve(self, deliveries: int, submitted: Submitted) -> bool:
        """Room here for an event's `deliveries` first attempts (taken if there is)."""
        return self.first_attempts is not None and self.first_attempts.reserve(
            deliveries, submitted.message
        )

    async def _publish(
        self,
        batch: Sequence[Submitted],
        publishing: list[tuple[int, list[DeliveryTask]]],
        results: list[Result | None],
    ) -> set[int]:
        """Publish each event's tasks; the events one of whose tasks was not confirmed. Each
        event's publish runs in its own message's context (its span is the parent); one
        event's unconfirmed task fails that event only (REQUEUED in `results`)."""
        unconfirmed: set[int] = set()
        if not publishing:  # the usual batch: every first attempt made here
            return unconfirmed
        loop = asyncio.get_running_loop()
        published = await asyncio.gather(
            *(
                loop.create_task(
                    self.publisher.publish_steps([DeliveryStep(task) for task in tasks]),
                    context=batch[i].context,
                )
                for i, tasks in publishing
            ),
            return_exceptions=True,
        )
        for (i, _), outcome in zip(publishing, published, strict=True):
            if isinstance(outcome, BaseException):
                results[i] = Result(Outcome.REQUEUED, error=outcome)
                unconfirmed.add(i)
        return unconfirmed

    def _release(self, reserved: Iterable[tuple[int, Submitted]]) -> None:
        """Give back the room of events' first attempts that will not run here."""
        for deliveries, submitted in reserved:
            if deliveries:  # nothing was reserved for an event with nothing to deliver
                assert self.first_attempts is not None  # nothing is reserved without it
                self.first_attempts.release(deliveries, submitted.message)


def delivery_tasks(
    event: EventMessage, deliveries: Sequence[PendingDelivery | PendingStep], payload_cap: int
) -> list[DeliveryTask]:
    """One task per delivery of the event, its data capped to the payload limit."""
    data = capped_data(event.id, event.type, event.created_at, event.data, payload_cap)
    return [
        DeliveryTask(
            delivery_id=delivery.id,
            event_id=event.id,
            endpoint_id=delivery.endpoint_id,
            organization_id=event.organization_id,
            type=event.type,
            event_created_at=event.created_at,
            data=data,
            ordering_key=delivery.ordering_key,
        )
        for delivery in deliveries
    ]


def _settled_by_prepare(event: EventMessage, ctx: EventContext | None) -> Result | None:
    """An answer that needs neither the event's lock nor any further statement."""
    if ctx is None:
        return REJECTED_UNKNOWN_ORG
    if (
        ctx.stored_organization_id is not None
        and ctx.stored_organization_id != event.organization_id
    ):
        return REJECTED_FOREIGN_ID
    if ctx.dispatched_at is not None:
        return DUPLICATE  # dispatched_at never goes back to NULL: no need for the lock
    if not ctx.locked:
        return BUSY
    return None


def _planned(event: EventMessage, ctx: EventContext | None) -> PlannedDeliveries:
    assert ctx is not None
    allowed = plan_gate.allows_event(ctx.plan, event.type)
    endpoint_ids = ctx.endpoint_ids if allowed else []
    parked_ids = ctx.parked_endpoint_ids if allowed else []
    if event.target_endpoint_id is not None:
        delivery_ids = [event.target_delivery_id or new_id(IdPrefix.DELIVERY)] * len(endpoint_ids)
    else:
        delivery_ids = [new_id(IdPrefix.DELIVERY) for _ in endpoint_ids]
    parked_delivery_ids = [new_id(IdPrefix.DELIVERY) for _ in parked_ids]
    keys = None
    if ctx.ordered_endpoint_ids:  # a keyed event, and its org has ordered endpoints
        ordered = ctx.ordered_endpoint_ids
        keys = [event.ordering_key if e in ordered else None for e in endpoint_ids]
    return PlannedDeliveries(
        event.id, delivery_ids, endpoint_ids, keys, parked_delivery_ids, parked_ids
    )
