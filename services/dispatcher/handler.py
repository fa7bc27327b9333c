"""What the dispatcher does with event messages, independent of the broker client.

`Dispatcher.handle` answers a Verdict for one message; the consumer in main.py turns it into
ack / reject / nack. Nothing here acknowledges anything, so the logic is testable with fakes.

The events in flight share their database round trips: `handle` submits its event to a
Batcher, whose batch is dispatched with one statement per step for all of its events
(prepare + lock, deliveries, mark dispatched + unlock; repository.py); an event whose
first attempts are all made here is marked by the deliveries statement. Each message still
gets its own verdict: one event's failed publish requeues that event only. Two copies of
one event never share a batch (the batcher's key); a copy whose twin is being dispatched
by another batch or replica right now waits for it alone, then finds nothing to publish.

First attempts: while it has room (first_attempts.py), the dispatcher POSTs a new event's
deliveries itself once they are stored and the event marked dispatched, and acknowledges
the event's message only once every one is settled; otherwise it publishes them to the
sender queue, confirmed before the event is marked dispatched. So a copy of a dispatched
event that the broker *redelivers* (its holder died or gave it back) may be all that is
left of attempts that never finished: it republishes the current step of each of the
event's PENDING deliveries (RECOVERED). A copy delivered for the first time (a producer's
or the relay's duplicate) only acks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import ValidationError

from libs.domain import plan_gate
from libs.domain.envelope import capped_data
from libs.domain.ids import IdPrefix, new_id
from libs.infra import telemetry
from libs.infra.batching import Batcher
from libs.infra.broker.messages import DeliveryStep, DeliveryTask, EventMessage
from libs.worker.runtime import Verdict
from services.dispatcher import metrics
from services.dispatcher.repository import (
    EventContext,
    EventDataError,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
)

log = logging.getLogger("hookpost.dispatcher")

# Batches in flight at once, each holding one pooled connection (its events' locks) from
# prepare to unlock; while all are busy the next batch keeps collecting (group commit).
CONCURRENT_BATCHES = 4
# Copies waiting for their twin's lock, each on its own connection (rare: duplicates).
CONCURRENT_WAITS = 2


class EventLocks(Protocol):
    async def prepare(
        self, events: Sequence[EventMessage], pending_limit: int
    ) -> list[EventContext | None]: ...

    async def drop(self, event_ids: Sequence[str], hour: str) -> dict[str, int]: ...

    async def insert_deliveries(
        self, planned: Sequence[PlannedDeliveries], *, finished: Sequence[str] = ()
    ) -> dict[str, list[PendingDelivery] | None]: ...

    async def finish(self, event_ids: Sequence[str]) -> None: ...

    async def __aenter__(self) -> EventLocks: ...

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None: ...


class Repository(Protocol):
    def event_locks(self, *, wait: bool = False) -> EventLocks: ...

    async def pending_steps(self, event_id: str) -> list[PendingStep]: ...


class Publisher(Protocol):
    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None: ...


class FirstAttemptsHere(Protocol):
    """first_attempts.FirstAttempts: room is reserved per event, run gives it back."""

    def reserve(self, deliveries: int) -> bool: ...

    def release(self, deliveries: int) -> None: ...

    async def run(self, tasks: Sequence[DeliveryTask]) -> bool: ...


class Outcome(StrEnum):
    """What became of one event (also the `outcome` label of EVENTS, except BUSY)."""

    DISPATCHED = "dispatched"
    DUPLICATE = "duplicate"
    RECOVERED = "recovered"
    DROPPED = "dropped"
    REJECTED = "rejected"
    REQUEUED = "requeued"
    BUSY = "busy"  # its twin holds the event's lock right now: wait for it, alone


_VERDICTS = {
    Outcome.DISPATCHED: Verdict.ACK,
    Outcome.DUPLICATE: Verdict.ACK,
    Outcome.RECOVERED: Verdict.ACK,
    Outcome.DROPPED: Verdict.ACK,
    Outcome.REJECTED: Verdict.REJECT,
    Outcome.REQUEUED: Verdict.REQUEUE,
}


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str = ""  # the log line
    deliveries: int = 0  # deliveries created (or, RECOVERED, steps republished)
    first_attempts: tuple[DeliveryTask, ...] = ()  # to POST here before the ack
    dropped_this_hour: int | None = None  # set when this run counted the drop
    hour: str = ""
    error: BaseException | None = None


REJECTED_UNKNOWN_ORG = Result(Outcome.REJECTED, "event for an unknown organization, dead-lettering")
REJECTED_FOREIGN_ID = Result(
    Outcome.REJECTED, "event id belongs to another organization, dead-lettering"
)
DUPLICATE = Result(Outcome.DUPLICATE, "duplicate event message ignored")
BUSY = Result(Outcome.BUSY)


@dataclass(frozen=True)
class Submitted:
    """One message's event, and its context: the message's span parents the event's
    publishes, and its log context the lines about it, whichever task runs the batch."""

    event: EventMessage
    context: contextvars.Context


class Dispatcher:
    def __init__(
        self,
        repository: Repository,
        publisher: Publisher,
        *,
        pending_limit: int,
        payload_cap_bytes: int,
        max_batch: int = 64,
        first_attempts: FirstAttemptsHere | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repository
        self._publisher = publisher
        self._first_attempts = first_attempts
        self._pending_limit = pending_limit
        self._payload_cap = payload_cap_bytes
        self._now = now
        # No linger: a batch is whatever arrived in the same loop turn, plus whatever
        # arrives while every batch slot is busy.
        self._batches: Batcher[Submitted, Result] = Batcher(
            self._dispatch_batch,
            max_items=max_batch,
            max_delay_s=0.0,
            key=lambda submitted: submitted.event.id,
            max_concurrent_writes=CONCURRENT_BATCHES,
        )
        self._waits = asyncio.Semaphore(CONCURRENT_WAITS)

    async def handle(self, body: bytes, *, redelivered: bool = False) -> Verdict:
        try:
            event = EventMessage.model_validate_json(body)
        except ValidationError as exc:
            log.warning("malformed event message", extra={"error": str(exc)[:500]})
            metrics.EVENTS.labels(Outcome.REJECTED.value).inc()
            return Verdict.REJECT
        ids = {"event_id": event.id, "organization_id": event.organization_id}
        telemetry.annotate(**ids)
        submitted = Submitted(event, contextvars.copy_context())
        try:
            result = await self._batches.submit(submitted)
            if result.outcome is Outcome.BUSY:
                async with self._waits:
                    [result] = await self._dispatch([submitted], wait=True)
            if result.outcome is Outcome.DUPLICATE and redelivered:
                result = await self._recover(event)
            elif result.first_attempts:
                result = await self._attempt_here(result)
        except Exception as exc:
            result = Result(Outcome.REQUEUED, error=exc)
        return self._report(result, ids)

    async def _attempt_here(self, result: Result) -> Result:
        assert self._first_attempts is not None
        if await self._first_attempts.run(result.first_attempts):
            return result
        return Result(Outcome.REQUEUED, error=FirstAttemptsUnsettled(result.first_attempts))

    async def _recover(self, event: EventMessage) -> Result:
        """Republish the step of each PENDING delivery of a dispatched event (see the top)."""
        pending = await self._repo.pending_steps(event.id)
        tasks = self._tasks(event, pending)
        await self._publisher.publish_steps(
            [
                DeliveryStep(task, max(step.attempt_count, 1), step.schedule_start)
                for task, step in zip(tasks, pending, strict=True)
            ]
        )
        return Result(
            Outcome.RECOVERED,
            "redelivered event: the steps of its pending deliveries republished",
            deliveries=len(pending),
        )

    async def close(self) -> None:
        """Finish every batch still collected (after the consumer has stopped)."""
        await self._batches.close()

    def _report(self, result: Result, ids: dict[str, str]) -> Verdict:
        """Log and count one event's outcome, in its own message's task (trace ids)."""
        outcome = result.outcome
        if outcome is Outcome.REQUEUED:
            # Postgres or the broker failed mid-way: nothing was marked dispatched, so a
            # redelivery redoes it (the delivery limit dead-letters a message that never works).
            log.error("dispatch failed, requeueing", extra=ids, exc_info=result.error)
        elif outcome is Outcome.REJECTED:
            log.warning(result.message, extra=ids)
        elif outcome is Outcome.DROPPED:
            if result.dropped_this_hour is not None:
                metrics.EVENTS_DROPPED_BACKPRESSURE.inc()
                log.warning(
                    result.message,
                    extra={
                        **ids,
                        "dropped_this_hour": result.dropped_this_hour,
                        "hour": result.hour,
                    },
                )
        elif outcome is Outcome.DISPATCHED or outcome is Outcome.RECOVERED:
            published = result.deliveries - len(result.first_attempts)
            metrics.DELIVERIES_PUBLISHED.inc(published)
            log.info(
                result.message,
                extra={**ids, "deliveries": result.deliveries, "published": published},
            )
        else:
            log.info(result.message, extra=ids)
        metrics.EVENTS.labels(outcome.value).inc()
        return _VERDICTS[outcome]

    async def _dispatch_batch(self, batch: list[Submitted]) -> list[Result]:
        try:
            return await self._dispatch(batch, wait=False)
        except EventDataError:
            if len(batch) == 1:
                raise
        # One event's data failed a statement the whole batch shared, before anything was
        # published: redo each event alone, so that only the failing one is requeued (its
        # neighbours would otherwise burn their delivery limit along with it).
        return list(await asyncio.gather(*(self._dispatch_alone(each) for each in batch)))

    async def _dispatch_alone(self, submitted: Submitted) -> Result:
        try:
            [result] = await self._dispatch([submitted], wait=False)
        except Exception as exc:
            return Result(Outcome.REQUEUED, error=exc)
        return result

    async def _dispatch(self, batch: Sequence[Submitted], *, wait: bool) -> list[Result]:
        """Dispatch the events of a batch (distinct ids), one statement per step for all."""
        results: list[Result | None] = [None] * len(batch)
        async with self._repo.event_locks(wait=wait) as locks:
            contexts = await locks.prepare([each.event for each in batch], self._pending_limit)
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
        return settled

    def _over_limit(self, event: EventMessage, ctx: EventContext | None) -> bool:
        # A /test call's single event is exempt: its caller already holds the delivery id.
        assert ctx is not None
        return event.target_endpoint_id is None and ctx.pending > self._pending_limit

    async def _drop(
        self,
        locks: EventLocks,
        batch: Sequence[Submitted],
        indexes: list[int],
        results: list[Result | None],
    ) -> None:
        hour = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H")
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
            if not each.endpoint_ids or self._reserve(len(each.endpoint_ids))
        }
        try:
            pending = await locks.insert_deliveries(
                planned, finished=[batch[i].event.id for i in room]
            )
        except BaseException:
            self._release(room.values())
            raise
        publishing: list[tuple[int, list[DeliveryTask]]] = []
        here: dict[int, list[DeliveryTask]] = {}  # first attempts POSTed by this replica
        to_finish: list[int] = []  # not marked yet: once their tasks are confirmed
        for i in indexes:
            deliveries = pending[batch[i].event.id]
            reserved = room.get(i, 0)
            if reserved and (deliveries is None or len(deliveries) != reserved):
                # The statement found other deliveries than planned (an earlier run's).
                self._release([reserved])
                reserved = 0
            if deliveries is None:
                results[i] = DUPLICATE  # dispatched meanwhile (the stale snapshot's case)
                continue
            if i not in room:
                to_finish.append(i)
            if not deliveries:
                continue
            tasks = self._tasks(batch[i].event, deliveries)
            if reserved or self._reserve(len(deliveries)):
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
            self._release(len(tasks) for tasks in here.values())
            raise
        for i in indexes:
            if results[i] is None:
                results[i] = Result(
                    Outcome.DISPATCHED,
                    "event dispatched",
                    deliveries=len(pending[batch[i].event.id] or []),
                    first_attempts=tuple(here.get(i, ())),
                )

    def _reserve(self, deliveries: int) -> bool:
        """Room here for an event's `deliveries` first attempts (taken if there is)."""
        return self._first_attempts is not None and self._first_attempts.reserve(deliveries)

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
                    self._publisher.publish_steps([DeliveryStep(task) for task in tasks]),
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

    def _release(self, reserved: Iterable[int]) -> None:
        """Give back the room of events' first attempts that will not run here."""
        for deliveries in reserved:
            if deliveries:  # nothing was reserved for an event with nothing to deliver
                assert self._first_attempts is not None  # nothing is reserved without it
                self._first_attempts.release(deliveries)

    def _tasks(
        self, event: EventMessage, deliveries: Sequence[PendingDelivery | PendingStep]
    ) -> list[DeliveryTask]:
        data = capped_data(event.id, event.type, event.created_at, event.data, self._payload_cap)
        return [
            DeliveryTask(
                delivery_id=delivery.id,
                event_id=event.id,
                endpoint_id=delivery.endpoint_id,
                organization_id=event.organization_id,
                type=event.type,
                event_created_at=event.created_at,
                data=data,
            )
            for delivery in deliveries
        ]


class FirstAttemptsUnsettled(Exception):
    def __init__(self, tasks: Sequence[DeliveryTask]) -> None:
        super().__init__(
            f"{len(tasks)} first attempt(s) could be neither settled nor handed to the sender"
            " queue; the event's redelivery recovers them"
        )


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
    endpoint_ids = ctx.endpoint_ids if plan_gate.allows_event(ctx.plan, event.type) else []
    if event.target_endpoint_id is not None:
        delivery_ids = [event.target_delivery_id or new_id(IdPrefix.DELIVERY)] * len(endpoint_ids)
    else:
        delivery_ids = [new_id(IdPrefix.DELIVERY) for _ in endpoint_ids]
    return PlannedDeliveries(event.id, delivery_ids, endpoint_ids)
