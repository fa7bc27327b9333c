"""What the dispatcher does with event messages, independent of the broker client.

`Dispatcher.handle` answers a Verdict for one message; the consumer in main.py turns it into
ack / reject / nack. Nothing here acknowledges anything, so the logic is testable with fakes.

The events in flight share their database round trips: `handle` submits its event to a
Batcher, whose batch is dispatched with one statement per step for all of its events
(batch.py). Each message still gets its own verdict. Two copies of
one event never share a batch (the batcher's key); a copy whose twin is being dispatched
by another batch or replica right now waits for it alone, then finds nothing to publish.

First attempts: while it has room (first_attempts.py), the dispatcher POSTs a new event's
deliveries itself once they are stored and the event marked dispatched, and acknowledges
the event's message only once every one is settled; otherwise it publishes them to the
sender queue, confirmed before the event is marked dispatched. So a copy of a dispatched
event that the broker *redelivers* (its holder died or gave it back) may be all that is
left of attempts that never finished: it republishes the current step of each of the
event's PENDING deliveries (RECOVERED), or, when the broker refuses them, acks and leaves
them to the reconciler, which re-drives PENDING deliveries from PostgreSQL
(LEFT_TO_RECONCILER). A copy delivered for the first time (a producer's
or the relay's duplicate) only acks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from libs.infra import telemetry
from libs.infra.batching import Batcher
from libs.infra.broker.messages import DeliveryStep, EventMessage, batch_items, is_batch
from libs.worker.consumers import Verdict
from services.dispatcher import metrics
from services.dispatcher.batch import BatchDispatcher, Submitted, delivery_tasks
from services.dispatcher.data_errors import EventDataError
from services.dispatcher.outcomes import VERDICTS, FirstAttemptsUnsettled, Outcome, Result
from services.dispatcher.ports import FirstAttemptsHere, LineReleases, Publisher, Repository

log = logging.getLogger("hookpost.dispatcher")

# Batches in flight at once, each holding one pooled connection (its events' locks) from
# prepare to unlock; while all are busy the next batch keeps collecting (group commit).
CONCURRENT_BATCHES = 4
# Copies waiting for their twin's lock, each on its own connection (rare: duplicates).
CONCURRENT_WAITS = 2


# Publishes each of a batch message's bad items as a message of its own (set_aside.py).
SetAside = Callable[[Sequence[Any]], Awaitable[None]]


def _malformed(exc: Exception) -> Verdict:
    log.warning("malformed event message", extra={"error": str(exc)[:500]})
    metrics.EVENTS.labels(Outcome.REJECTED.value).inc()
    return Verdict.REJECT


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
        releases: LineReleases | None = None,
        set_aside: SetAside | None = None,
    ) -> None:
        self._repo = repository
        self._set_aside = set_aside
        self._publisher = publisher
        self._first_attempts = first_attempts
        self._payload_cap = payload_cap_bytes
        self._batch = BatchDispatcher(
            repository, publisher, first_attempts, pending_limit, payload_cap_bytes, now, releases
        )
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

    async def handle(
        self,
        body: bytes,
        *,
        redelivered: bool = False,
        event_traces: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Verdict:
        """`event_traces`: a batch's events' own trace contexts, by id (EVENT_TRACES_HEADER)."""
        if is_batch(body):
            return await self._handle_batch(body, redelivered, event_traces or {})
        try:
            event = EventMessage.model_validate_json(body)
        except ValidationError as exc:
            return _malformed(exc)
        return await self._handle_event(event, redelivered, message=object())

    async def _handle_batch(
        self, body: bytes, redelivered: bool, traces: Mapping[str, Mapping[str, str]]
    ) -> Verdict:
        """Many events in one message: each handled as a message of its own would be. The
        message is acked once every good one is settled; a bad one (malformed, or rejected
        as a message of its own would be) is first published alone, to be dead-lettered as
        poison like any bad single message. Any requeue redelivers the whole message (its
        settled events are then duplicates, handled as such)."""
        try:
            items = batch_items(body)
        except ValueError as exc:
            return _malformed(exc)
        events: list[tuple[Any, EventMessage]] = []
        bad: list[Any] = []
        for item in items:
            try:
                events.append((item, EventMessage.model_validate(item)))
            except ValidationError as exc:
                # Counted once, when its message of its own is rejected.
                log.warning("malformed event in a batch", extra={"error": str(exc)[:500]})
                bad.append(item)
        message = object()  # its events share one slot of the first-attempt room
        verdicts = await asyncio.gather(
            *(
                self._handle_in_trace(event, redelivered, message, traces.get(event.id))
                for _, event in events
            )
        )
        if Verdict.REQUEUE in verdicts:
            return Verdict.REQUEUE
        bad += [item for (item, _), v in zip(events, verdicts, strict=True) if v is Verdict.REJECT]
        if bad:
            if self._set_aside is None:
                return Verdict.REJECT  # no way to part them: the whole message is poison
            try:
                await self._set_aside(bad)
            except Exception:
                log.exception("could not set a batch's bad events aside; requeueing it")
                return Verdict.REQUEUE
        return Verdict.ACK

    async def _handle_in_trace(
        self,
        event: EventMessage,
        redelivered: bool,
        message: object,
        carrier: Mapping[str, str] | None,
    ) -> Verdict:
        """A batch's event, in the trace of the request that accepted it when it carries one
        (each gathered event runs in a task of its own: its context is its own)."""
        with telemetry.carried_span("event dispatch", carrier, event_id=event.id):
            return await self._handle_event(event, redelivered, message)

    async def _handle_event(
        self, event: EventMessage, redelivered: bool, message: object
    ) -> Verdict:
        ids = {"event_id": event.id, "organization_id": event.organization_id}
        telemetry.annotate(**ids)
        submitted = Submitted(event, contextvars.copy_context(), message)
        try:
            result = await self._batches.submit(submitted)
            if result.outcome is Outcome.BUSY:
                async with self._waits:
                    [result] = await self._batch.dispatch([submitted], wait=True)
            if result.outcome is Outcome.DUPLICATE and redelivered:
                result = await self._recover(event)
            elif result.first_attempts:
                assert self._first_attempts is not None
                if not await self._first_attempts.run(result.first_attempts, message):
                    result = Result(
                        Outcome.REQUEUED, error=FirstAttemptsUnsettled(result.first_attempts)
                    )
        except Exception as exc:
            result = Result(Outcome.REQUEUED, error=exc)
        return self._report(result, ids)

    async def _recover(self, event: EventMessage) -> Result:
        """Republish the step of each PENDING delivery of a dispatched event (see the top)."""
        pending = await self._repo.pending_steps(event.id)
        tasks = delivery_tasks(event, pending, self._payload_cap)
        try:
            await self._publisher.publish_steps(
                [
                    DeliveryStep(task, max(step.attempt_count, 1), step.schedule_start)
                    for task, step in zip(tasks, pending, strict=True)
                ]
            )
        except Exception as exc:
            # The deliveries are PENDING in PostgreSQL, and the reconciler re-drives them once
            # overdue (reconciler.py). Requeued instead, the copy came straight back to the
            # same refusal while the sender queue had no leader, used up its delivery limit
            # within seconds and ended among the poison messages (make chaos, session 13).
            return Result(
                Outcome.LEFT_TO_RECONCILER,
                "redelivered event: its pending deliveries could not be republished;"
                " the reconciler re-drives them",
                deliveries=len(pending),
                error=exc,
            )
        if event.ordering_key is not None:
            # Its dispatch may have ended before it released the event's key (ordering.py).
            await self._batch.release_keys({(event.organization_id, event.ordering_key)})
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
        elif outcome is Outcome.LEFT_TO_RECONCILER:
            log.warning(result.message, extra=ids, exc_info=result.error)
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
        return VERDICTS[outcome]

    async def _dispatch_batch(self, batch: list[Submitted]) -> list[Result]:
        try:
            return await self._batch.dispatch(batch, wait=False)
        except EventDataError:
            if len(batch) == 1:
                raise
        # One event's data failed a statement the whole batch shared, before anything was
        # published: redo each event alone, so that only the failing one is requeued (its
        # neighbours would otherwise burn their delivery limit along with it).
        return list(await asyncio.gather(*(self._dispatch_alone(each) for each in batch)))

    async def _dispatch_alone(self, submitted: Submitted) -> Result:
        try:
            [result] = await self._batch.dispatch([submitted], wait=False)
        except Exception as exc:
            return Result(Outcome.REQUEUED, error=exc)
        return result
