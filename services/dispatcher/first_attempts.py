"""First attempts the dispatcher POSTs itself, without a second trip through the broker.

A new delivery would otherwise cost two confirmed broker round trips before its first POST:
the event to the dispatcher, then a task to a sender. Here the dispatcher hands the
deliveries it has just created to the delivery engine (libs/delivery/engine.py
`first_attempts`: sign, POST, record, publish the retry), and the broker carries retries
only (BENCHMARKS.md has what it bought).

Nothing is lost while it runs: the event's message stays unacknowledged until every one of
its first attempts is settled (recorded, and its next step confirmed), so a dispatcher that
dies meanwhile has the event redelivered, and the redelivered copy republishes the step of
every delivery still PENDING to the sender queue (handler.py, `Outcome.RECOVERED`).

Isolation from slow endpoints: at most `max_attempts` POSTs, for the events of at most
`max_messages` messages, run here at once (`reserve`). Beyond that an event's tasks go
through the sender queue as before, so slow endpoints tie up a bounded share of the
dispatcher and never stop it from dispatching. Messages, not events, are counted: a message
waiting on its first attempts holds one of the consumer's prefetch slots however many events
it carries, and at most half the prefetch may wait, so that new messages keep flowing
(counted by event, a batch message's first 128 events filled the room, and the rest went
the long way). The room is sized for slow endpoints too (`HOOKPOST_DISPATCHER_PREFETCH`):
a 2 s endpoint at 200 events/s keeps 400 messages waiting, and its first attempts made here
cost a fraction of what the sender queue's round trip does (BENCHMARKS.md, "Session 11").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from libs.delivery.engine import Outcome
from libs.infra import gathering
from libs.infra.broker.messages import DeliveryStep, DeliveryTask
from services.dispatcher import metrics

log = logging.getLogger("hookpost.dispatcher.first_attempts")


class Engine(Protocol):
    """The delivery engine, as the dispatcher uses it (libs/delivery/engine.py)."""

    async def first_attempts(
        self, tasks: Sequence[DeliveryTask], ended: Callable[[], None]
    ) -> list[Outcome]: ...

    async def bury(self, task: DeliveryTask) -> Outcome: ...


class StepPublisher(Protocol):
    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None: ...


class FirstAttempts:
    def __init__(
        self,
        engine: Engine,
        publisher: StepPublisher,
        *,
        max_attempts: int,
        max_messages: int,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._max_attempts = max_attempts
        self._max_messages = max_messages
        self._running_attempts = 0
        # events holding room, per message (a message's token: see `reserve`)
        self._holding: dict[object, int] = {}

    def reserve(self, deliveries: int, message: object) -> bool:
        """Room for one event's `deliveries` first attempts here? If so it is taken, and
        `run` gives it back: each attempt's as it ends, the message's once every one has.
        `message` is any object standing for the event's message: the events of one message
        share its slot."""
        if self._running_attempts + deliveries > self._max_attempts:
            return False
        holding = self._holding.get(message, 0)
        if not holding and len(self._holding) >= self._max_messages:
            return False
        self._holding[message] = holding + 1
        self._running_attempts += deliveries
        return True

    def release(self, deliveries: int, message: object) -> None:
        """Give back one event's room (`run` does; its caller, when `run` never comes)."""
        self._running_attempts -= deliveries
        holding = self._holding.pop(message) - 1
        if holding:
            self._holding[message] = holding

    async def run(self, tasks: Sequence[DeliveryTask], message: object) -> bool:
        """POST each task's first attempt (reserved with `reserve(len(tasks), message)`); True when
        every one is settled, False when one could be neither settled here nor handed to the
        sender queue (the event must then be redelivered, and recovered)."""
        running = len(tasks)

        def ended() -> None:  # a quick attempt's room is not kept for its slow sibling
            nonlocal running
            running -= 1
            self._running_attempts -= 1

        try:
            metrics.FIRST_ATTEMPTS_HERE.inc(len(tasks))
            outcomes = await self._engine.first_attempts(tasks, ended)
            settled = await gathering.gather(list(map(self._settle, tasks, outcomes)))
            return all(settled)
        finally:
            self.release(running, message)

    async def _hand_over(self, task: DeliveryTask) -> bool:
        """Whether the sender queue has the task's first step (False: the event must be
        redelivered, and recovered)."""
        try:
            await self._publisher.publish_steps([DeliveryStep(task)])
        except Exception:
            log.warning(
                "could not hand a first attempt to the sender queue",
                extra={"delivery_id": task.delivery_id},
                exc_info=True,
            )
            return False
        return True

    async def _settle(self, task: DeliveryTask, outcome: Outcome) -> bool:
        if outcome is Outcome.DEAD_LETTER:
            # No attempt left after the first (a sink with retry_failed_push 0): there is no
            # queue to dead-letter from here, so it is buried as the dead-letter queue would.
            outcome = await self._engine.bury(task)
        if outcome is Outcome.SETTLED:
            return True
        # Postgres or the broker failed mid-way: the sender queue takes the step over. A
        # sender that finds the attempt recorded does not POST it again.
        if not await self._hand_over(task):
            return False
        metrics.FIRST_ATTEMPTS_HANDED_OVER.inc()
        return True
