"""First attempts the dispatcher POSTs itself, without a second trip through the broker.

A new delivery used to cost two confirmed broker round trips before its first POST: the
event to the dispatcher, then a task to a sender. Here the dispatcher runs the sender's own
attempt (services/sender/consumer.py: sign, POST, record, publish the retry) for the
deliveries it just created, handing it their rows instead of letting it load them, and the
broker carries retries only. BENCHMARKS.md rounds 6 and 7 have what it bought.

Nothing is lost while it runs: the event's message stays unacknowledged until every one of
its first attempts is settled (recorded, and its next step confirmed), so a dispatcher that
dies meanwhile has the event redelivered, and the redelivered copy republishes the step of
every delivery still PENDING to the sender queue (handler.py, `Outcome.RECOVERED`).

Isolation from slow endpoints: at most `max_attempts` POSTs, for at most `max_events`
events, run here at once (`reserve`). Beyond that an event's tasks go through the sender
queue as before, so a slow endpoint ties up a bounded share of the dispatcher and never
stops it from dispatching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryTask
from libs.worker.runtime import Verdict
from services.dispatcher import metrics
from services.dispatcher.publisher import TaskStep
from services.sender.repository import DeliveryRow

log = logging.getLogger("hookpost.dispatcher.first_attempts")

FIRST_ATTEMPT_SPAN = "first attempt"


class Attempts(Protocol):
    """The sender's handler of one task (DeliverySender)."""

    async def handle_task(
        self,
        task: DeliveryTask,
        body: bytes | None,
        headers: dict[str, int],
        *,
        created: DeliveryRow | None = None,
    ) -> Verdict: ...


class CreatedRows(Protocol):
    """The sender's rows of deliveries just created, unread (SenderRepository.created)."""

    async def created(self, tasks: Sequence[DeliveryTask]) -> list[DeliveryRow | None]: ...


class DeadLetters(Protocol):
    """The sender's handler of a task with no attempts left (DeadLetterHandler)."""

    async def handle(self, body: bytes) -> Verdict: ...


class TaskPublisher(Protocol):
    async def publish_steps(self, steps: Sequence[TaskStep]) -> None: ...


class FirstAttempts:
    def __init__(
        self,
        attempts: Attempts,
        rows: CreatedRows,
        dead_letters: DeadLetters,
        publisher: TaskPublisher,
        *,
        max_attempts: int,
        max_events: int,
    ) -> None:
        self._attempts = attempts
        self._rows = rows
        self._dead_letters = dead_letters
        self._publisher = publisher
        self._max_attempts = max_attempts
        self._max_events = max_events
        self._running_attempts = 0
        self._running_events = 0

    def reserve(self, deliveries: int) -> bool:
        """Room for one event's `deliveries` first attempts here? If so it is taken, and
        `run` gives it back."""
        if (
            self._running_events >= self._max_events
            or self._running_attempts + deliveries > self._max_attempts
        ):
            return False
        self._running_events += 1
        self._running_attempts += deliveries
        return True

    def release(self, deliveries: int) -> None:
        """Give back one event's room (`run` does; its caller, when `run` never comes)."""
        self._running_events -= 1
        self._running_attempts -= deliveries

    async def run(self, tasks: Sequence[DeliveryTask]) -> bool:
        """POST each task's first attempt (reserved with `reserve(len(tasks))`); True when
        every one is settled, False when one could be neither settled here nor handed to the
        sender queue (the event must then be redelivered, and recovered)."""
        try:
            metrics.FIRST_ATTEMPTS_HERE.inc(len(tasks))
            # The rows were just created, so they are not read again (a sender reads its
            # task's row: it may have changed since); a task whose endpoint is gone from the
            # cache (None) is read, and found gone.
            rows = await self._rows.created(tasks)
            settled = await asyncio.gather(
                *(self._settle(task, row) for task, row in zip(tasks, rows, strict=True))
            )
            return all(settled)
        finally:
            self.release(len(tasks))

    async def _settle(self, task: DeliveryTask, created: DeliveryRow | None) -> bool:
        step = TaskStep(task)
        # Its own span (the sender's "process" span for attempt 1): the ids the sender's
        # code puts on the current span must not land on the event's, shared by its fan-out.
        # No wire form: most first attempts never leave this process (1-3 % of the
        # dispatcher's main thread serialised tasks nobody read; BENCHMARKS.md round 8).
        with telemetry.internal_span(FIRST_ATTEMPT_SPAN):
            verdict = await self._attempts.handle_task(task, None, step.headers(), created=created)
        if verdict is Verdict.REJECT:
            # No attempt left after the first (a sink with retry_failed_push 0): what the
            # sender queue's dead-lettering would have done.
            verdict = await self._dead_letters.handle(task.to_bytes())
        if verdict is Verdict.ACK:
            return True
        # Postgres or the broker failed mid-way: the sender queue takes the task over. A
        # sender that finds the attempt recorded does not POST it again.
        try:
            await self._publisher.publish_steps([step])
        except Exception:
            log.warning(
                "could not hand a first attempt to the sender queue",
                extra={"delivery_id": task.delivery_id},
                exc_info=True,
            )
            return False
        metrics.FIRST_ATTEMPTS_HANDED_OVER.inc()
        return True
