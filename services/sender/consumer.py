"""What the sender does with a message: read the step it asks for, hand it to the delivery
engine (libs/delivery/engine.py), and answer how to settle the message.

    engine says SETTLED ....... ack
    engine says DEAD_LETTER ... reject → DLX → <prefix>.dead → `bury` marks it DEAD
    engine says UNSETTLED ..... requeue (once the database answers again)

What else reaches <prefix>.dead (a task nothing can read, one that failed its consumer
`x-delivery-limit` times) is poison: kept, never marked DEAD (libs/worker/poison.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from libs.delivery.engine import Outcome
from libs.infra.broker.messages import DeliveryStep, DeliveryTask
from libs.worker.consumers import Verdict
from libs.worker.poison import Death

log = logging.getLogger("hookpost.sender")

# The sender rejects a task with no attempt left; the queue dead-letters it with this reason.
EXHAUSTED = "rejected"

VERDICTS = {
    Outcome.SETTLED: Verdict.ACK,
    Outcome.DEAD_LETTER: Verdict.REJECT,
    Outcome.UNSETTLED: Verdict.REQUEUE,
}


class Engine(Protocol):
    """The delivery engine, as the sender uses it (libs/delivery/engine.py)."""

    async def attempt(self, step: DeliveryStep) -> Outcome: ...

    async def bury(self, task: DeliveryTask) -> Outcome: ...


class Poison(Protocol):
    async def keep(
        self, body: bytes, headers: Mapping[str, Any], message_id: str | None
    ) -> Verdict: ...


class SenderConsumer:
    def __init__(self, engine: Engine, poison: Poison) -> None:
        self._engine = engine
        self._poison = poison

    async def on_task(self, body: bytes, headers: Mapping[str, Any]) -> Verdict:
        try:
            step = DeliveryStep.from_message(body, headers)
        except ValidationError as exc:
            log.warning("malformed delivery task, dead-lettering", extra={"error": str(exc)[:500]})
            return Verdict.REJECT
        return VERDICTS[await self._engine.attempt(step)]

    async def on_dead_letter(
        self, body: bytes, headers: Mapping[str, Any], message_id: str | None
    ) -> Verdict:
        """A delivery whose last attempt failed becomes DEAD; anything else is poison."""
        try:
            task = DeliveryTask.model_validate_json(body)
        except ValidationError:
            return await self._poison.keep(body, headers, message_id)
        if Death.of(headers, "").reason != EXHAUSTED:
            return await self._poison.keep(body, headers, message_id)
        outcome = await self._engine.bury(task)
        return Verdict.REQUEUE if outcome is Outcome.UNSETTLED else Verdict.ACK
