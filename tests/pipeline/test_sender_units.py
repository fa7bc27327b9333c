"""The sender's consumer around the delivery engine, with a fake engine (no services needed):
how a message becomes a step, and how each outcome settles the message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
from tests.support.factories import delivery_task

TASK = delivery_task()


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


@dataclass
class FakePoison:
    kept: list[bytes] = field(default_factory=list)

    async def keep(
        self, body: bytes, headers: Mapping[str, Any], message_id: str | None
    ) -> Verdict:
        self.kept.append(body)
        return Verdict.ACK


EXHAUSTED = {"x-death": [{"reason": "rejected", "queue": "p.sender", "exchange": "p.deliveries"}]}


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
    assert await SenderConsumer(engine, FakePoison()).on_task(TASK.to_bytes(), headers) is verdict
    assert engine.steps == [DeliveryStep(TASK, 3, 2)]


async def test_a_malformed_task_is_dead_lettered_without_an_attempt() -> None:
    engine = FakeEngine()
    assert await SenderConsumer(engine, FakePoison()).on_task(b"{not json", {}) is Verdict.REJECT
    assert engine.steps == []


async def test_exhausted_deliveries_are_buried_and_requeued_while_that_fails() -> None:
    engine = FakeEngine()
    consumer = SenderConsumer(engine, FakePoison())
    assert await consumer.on_dead_letter(TASK.to_bytes(), EXHAUSTED, "del_1") is Verdict.ACK
    assert engine.buried == [TASK]
    engine.outcome = Outcome.UNSETTLED
    assert await consumer.on_dead_letter(TASK.to_bytes(), EXHAUSTED, "del_1") is Verdict.REQUEUE


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"garbage", EXHAUSTED),  # nothing can read it
        (TASK.to_bytes(), {"x-death": [{"reason": "delivery_limit", "queue": "p.sender"}]}),
        (TASK.to_bytes(), {}),  # dead-lettered by nobody we know
    ],
)
async def test_anything_else_on_the_dead_queue_is_kept_as_poison(
    body: bytes, headers: dict[str, Any]
) -> None:
    engine, poison = FakeEngine(), FakePoison()
    assert await SenderConsumer(engine, poison).on_dead_letter(body, headers, None) is Verdict.ACK
    assert poison.kept == [body] and engine.buried == []
