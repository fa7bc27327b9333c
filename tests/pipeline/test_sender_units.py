"""The sender's consumer around the delivery engine, with a fake engine (no services needed):
how a message becomes a step, and how each outcome settles the message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from libs.delivery.engine import Outcome
from libs.infra.broker.messages import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    DeliveryStep,
    DeliveryTask,
)
from libs.worker.consumers import Verdict
from services.sender.consumer import SenderConsumer

TASK = DeliveryTask(
    delivery_id="del_1",
    event_id="evt_1",
    endpoint_id="dest_1",
    organization_id="org_1",
    type="mapping.completed",
    event_created_at=datetime(2026, 11, 22, tzinfo=UTC),
    data={"a": 1},
)


@dataclass
class FakeEngine:
    outcome: Outcome = Outcome.SETTLED
    steps: list[DeliveryStep] = field(default_factory=list)
    buried: list[DeliveryTask] = field(default_factory=list)

    async def attempt(self, step: DeliveryStep) -> Outcome:
        self.steps.append(step)
        return self.outcome

    async def bury(self, task: DeliveryTask) -> Outcome:
        self.buried.append(task)
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Outcome.SETTLED, Verdict.ACK),
        (Outcome.DEAD_LETTER, Verdict.REJECT),
        (Outcome.UNSETTLED, Verdict.REQUEUE),
    ],
)
async def test_each_outcome_settles_the_message_its_way(outcome: Outcome, verdict: Verdict) -> None:
    engine = FakeEngine(outcome)
    headers = {ATTEMPT_HEADER: 3, SCHEDULE_START_HEADER: 2, "traceparent": "x"}
    assert await SenderConsumer(engine).on_task(TASK.to_bytes(), headers) is verdict
    assert engine.steps == [DeliveryStep(TASK, 3, 2)]


async def test_a_malformed_task_is_dead_lettered_without_an_attempt() -> None:
    engine = FakeEngine()
    assert await SenderConsumer(engine).on_task(b"{not json", {}) is Verdict.REJECT
    assert engine.steps == []


async def test_dead_letters_are_buried_and_requeued_while_that_fails() -> None:
    engine = FakeEngine()
    consumer = SenderConsumer(engine)
    assert await consumer.on_dead_letter(TASK.to_bytes()) is Verdict.ACK
    assert engine.buried == [TASK]
    engine.outcome = Outcome.UNSETTLED
    assert await consumer.on_dead_letter(TASK.to_bytes()) is Verdict.REQUEUE
    assert await consumer.on_dead_letter(b"garbage") is Verdict.ACK  # unreadable: dropped
