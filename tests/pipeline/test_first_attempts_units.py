"""The dispatcher's own first attempts, with fakes: which events they take, what happens
when one cannot be settled, and how a redelivered copy of a dispatched event recovers its
deliveries (the real pipeline: test_first_attempts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from libs.delivery.engine import Outcome
from libs.infra.broker.messages import DeliveryStep, DeliveryTask
from libs.worker.consumers import Verdict
from services.dispatcher.first_attempts import FirstAttempts
from services.dispatcher.handler import Dispatcher
from services.dispatcher.rows import PendingStep
from tests.pipeline.test_dispatcher_units import (
    NOW,
    FakeDispatchRepo,
    FakePublisher,
    context,
    event,
)
from tests.support.factories import delivery_task


@dataclass
class FakeFirstAttempts:
    room: bool = True
    room_for: int | None = None  # the most deliveries reserved at once (None: no limit)
    settles: bool = True
    reserved: int = 0
    ran: list[list[str]] = field(default_factory=list)  # endpoint ids per run
    messages: list[object] = field(default_factory=list)  # the message of each reservation

    def reserve(self, deliveries: int, message: object) -> bool:
        fits = self.room_for is None or self.reserved + deliveries <= self.room_for
        if self.room and fits:
            self.reserved += deliveries
            self.messages.append(message)
        return self.room and fits

    def release(self, deliveries: int, message: object) -> None:
        self.reserved -= deliveries

    async def run(self, tasks: Sequence[DeliveryTask], message: object) -> bool:
        self.ran.append([task.endpoint_id for task in tasks])
        self.release(len(tasks), message)
        return self.settles


def dispatcher(
    repo: FakeDispatchRepo, publisher: FakePublisher, here: FakeFirstAttempts
) -> Dispatcher:
    return Dispatcher(
        repo,
        publisher,
        pending_limit=3,
        payload_cap_bytes=1024,
        first_attempts=here,
        now=lambda: NOW,
    )


TWO_ENDPOINTS = context(endpoints=["dest_1", "dest_2"])


async def test_first_attempts_made_here_are_not_published_and_the_event_is_marked() -> None:
    repo, publisher, here = FakeDispatchRepo(TWO_ENDPOINTS), FakePublisher(), FakeFirstAttempts()
    assert await dispatcher(repo, publisher, here).handle(event()) is Verdict.ACK
    assert here.ran == [["dest_1", "dest_2"]] and publisher.tasks == []
    assert repo.marked == ["evt_1"] and here.reserved == 0
    # Nothing had to be confirmed first: the deliveries statement marked it, no finish ran.
    assert repo.marked_on_insert == [["evt_1"]] and repo.mark_calls == []


async def test_without_room_here_the_tasks_go_to_the_sender_queue() -> None:
    here = FakeFirstAttempts(room=False)
    repo, publisher = FakeDispatchRepo(TWO_ENDPOINTS), FakePublisher()
    assert await dispatcher(repo, publisher, here).handle(event()) is Verdict.ACK
    assert here.ran == [] and [t.endpoint_id for t in publisher.tasks] == ["dest_1", "dest_2"]
    assert repo.marked == ["evt_1"]
    assert repo.marked_on_insert == [[]] and repo.mark_calls == [["evt_1"]]  # after confirms


async def test_an_event_with_nothing_to_deliver_is_marked_by_the_deliveries_statement() -> None:
    repo, publisher = FakeDispatchRepo(context(endpoints=[])), FakePublisher()
    here = FakeFirstAttempts(room=False)  # no room needed
    assert await dispatcher(repo, publisher, here).handle(event()) is Verdict.ACK
    assert repo.marked_on_insert == [["evt_1"]] and repo.mark_calls == []


async def test_a_marked_event_whose_overflow_publish_failed_is_requeued_for_recovery() -> None:
    # Its planned deliveries had room, but the statement returned more (an earlier run's
    # too) and the rest of the room was gone: published, unconfirmed, so requeued.
    repo = FakeDispatchRepo(TWO_ENDPOINTS, extra_pending=["dest_0"])
    here = FakeFirstAttempts(room_for=2)
    publisher = FakePublisher(fail=True)
    assert await dispatcher(repo, publisher, here).handle(event()) is Verdict.REQUEUE
    assert repo.marked == ["evt_1"] and here.ran == [] and here.reserved == 0


async def test_an_unsettled_first_attempt_requeues_the_dispatched_event() -> None:
    here = FakeFirstAttempts(settles=False)
    repo, publisher = FakeDispatchRepo(TWO_ENDPOINTS), FakePublisher()
    assert await dispatcher(repo, publisher, here).handle(event()) is Verdict.REQUEUE
    assert repo.marked == ["evt_1"]  # its redelivery recovers it (next test)


async def test_a_failed_deliveries_statement_gives_the_room_back_and_posts_nothing() -> None:
    repo, here = FakeDispatchRepo(TWO_ENDPOINTS, fail_insert=True), FakeFirstAttempts()
    assert await dispatcher(repo, FakePublisher(), here).handle(event()) is Verdict.REQUEUE
    assert here.ran == [] and here.reserved == 0 and repo.marked == []


async def test_a_failed_mark_gives_back_the_room_of_the_batch_and_posts_nothing() -> None:
    # Two events in one batch: the first fits here (marked by the deliveries statement),
    # the second does not and goes to the sender queue; its mark fails, so the batch fails
    # and the first event's room comes back (its redelivery recovers it).
    repo = FakeDispatchRepo(TWO_ENDPOINTS, fail_finish=True)
    here = FakeFirstAttempts(room_for=2)
    d = dispatcher(repo, FakePublisher(), here)
    verdicts = await asyncio.gather(
        d.handle(event(event_id="evt_1")), d.handle(event(event_id="evt_2"))
    )
    assert verdicts == [Verdict.REQUEUE, Verdict.REQUEUE]
    assert here.ran == [] and here.reserved == 0 and repo.marked == ["evt_1"]


async def test_a_batch_messages_events_reserve_room_as_one_message() -> None:
    repo, here = FakeDispatchRepo(TWO_ENDPOINTS), FakeFirstAttempts()
    d = dispatcher(repo, FakePublisher(), here)
    batch = b"[" + event(event_id="evt_1") + b"," + event(event_id="evt_2") + b"]"
    assert await d.handle(batch) is Verdict.ACK
    assert await d.handle(event(event_id="evt_3")) is Verdict.ACK
    first, second, single = here.messages
    assert first is second and single is not first


async def test_a_redelivered_copy_of_a_dispatched_event_republishes_each_pending_step() -> None:
    repo = FakeDispatchRepo(
        context(dispatched_at=NOW),
        pending=[PendingStep("del_a", "dest_1", 0, 1), PendingStep("del_b", "dest_2", 2, 1)],
    )
    publisher, here = FakePublisher(), FakeFirstAttempts()
    verdict = await dispatcher(repo, publisher, here).handle(event(), redelivered=True)
    assert verdict is Verdict.ACK and here.ran == []
    assert [(s.task.delivery_id, s.attempt, s.schedule_start) for s in publisher.steps] == [
        ("del_a", 1, 1),  # never attempted: its first attempt
        ("del_b", 2, 1),  # attempt 2 recorded: the sender redoes only what follows it
    ]


async def test_a_first_delivery_of_a_duplicate_publishes_nothing() -> None:
    repo = FakeDispatchRepo(
        context(dispatched_at=NOW), pending=[PendingStep("del_a", "dest_1", 0, 1)]
    )
    publisher = FakePublisher()
    verdict = await dispatcher(repo, publisher, FakeFirstAttempts()).handle(event())
    assert verdict is Verdict.ACK and publisher.steps == []


# ---------------------------------------------------------------- FirstAttempts itself


@dataclass
class FakeEngine:
    """The delivery engine as the dispatcher uses it: each first attempt's outcome is scripted,
    and what it was asked is kept."""

    outcome: Outcome
    bury_outcome: Outcome = Outcome.SETTLED
    attempted: list[list[DeliveryTask]] = field(default_factory=list)
    buried: list[DeliveryTask] = field(default_factory=list)

    # each task's attempt ends once this is set (None: at once)
    slow: dict[str, asyncio.Event] = field(default_factory=dict)

    async def first_attempts(
        self, tasks: Sequence[DeliveryTask], ended: Callable[[], None]
    ) -> list[Outcome]:
        self.attempted.append(list(tasks))

        async def attempt(task: DeliveryTask) -> Outcome:
            if task.delivery_id in self.slow:
                await self.slow[task.delivery_id].wait()
            ended()
            return self.outcome

        return list(await asyncio.gather(*map(attempt, tasks)))

    async def bury(self, task: DeliveryTask) -> Outcome:
        self.buried.append(task)
        return self.bury_outcome


def task(delivery_id: str = "del_1", endpoint_id: str = "dest_1") -> DeliveryTask:
    return delivery_task(delivery_id=delivery_id, endpoint_id=endpoint_id, data={})


def first_attempts(engine: FakeEngine, publisher: FakePublisher | None = None) -> FirstAttempts:
    return FirstAttempts(engine, publisher or FakePublisher(), max_attempts=3, max_messages=2)


M1, M2, M3 = object(), object(), object()  # three messages


def test_room_is_bounded_by_attempts_and_by_messages() -> None:
    here = first_attempts(FakeEngine(Outcome.SETTLED))
    assert here.reserve(2, M1)
    assert not here.reserve(2, M2)  # 4 attempts > 3
    assert here.reserve(1, M2)
    assert not here.reserve(0, M3)  # a third message > 2
    here.release(2, M1)
    assert here.reserve(2, M3)


def test_the_events_of_one_message_share_its_slot() -> None:
    # A batch message's events hold one of the consumer's prefetch slots between them: the
    # room counts messages, or a message of 100 events would take the room of 100.
    here = FirstAttempts(FakeEngine(Outcome.SETTLED), FakePublisher(), max_attempts=10,
                         max_messages=1)  # fmt: skip
    assert here.reserve(1, M1) and here.reserve(1, M1) and here.reserve(1, M1)
    assert not here.reserve(1, M2)  # a second message > 1
    here.release(1, M1)
    here.release(1, M1)
    assert not here.reserve(1, M2)  # M1 still holds its slot (one event left)
    here.release(1, M1)
    assert here.reserve(1, M2)


async def test_settled_first_attempts_publish_nothing_and_give_the_room_back() -> None:
    engine, publisher = FakeEngine(Outcome.SETTLED), FakePublisher()
    here = first_attempts(engine, publisher)
    assert here.reserve(2, M1)
    assert await here.run([task("del_1"), task("del_2")], M1)
    assert engine.attempted == [[task("del_1"), task("del_2")]] and publisher.steps == []
    assert engine.buried == []
    assert here.reserve(3, M1)  # the room came back


async def test_no_attempt_left_after_the_first_buries_the_delivery() -> None:
    engine = FakeEngine(Outcome.DEAD_LETTER)
    here = first_attempts(engine)
    assert here.reserve(1, M1) and await here.run([task()], M1)
    assert engine.buried == [task()]


async def test_an_attempt_that_failed_mid_way_is_handed_to_the_sender_queue() -> None:
    publisher = FakePublisher()
    here = first_attempts(FakeEngine(Outcome.UNSETTLED), publisher)
    assert here.reserve(1, M1) and await here.run([task()], M1)
    assert publisher.steps == [DeliveryStep(task())]


async def test_a_burial_that_failed_is_handed_to_the_sender_queue() -> None:
    publisher = FakePublisher()
    engine = FakeEngine(Outcome.DEAD_LETTER, bury_outcome=Outcome.UNSETTLED)
    here = first_attempts(engine, publisher)
    assert here.reserve(1, M1) and await here.run([task()], M1)
    assert engine.buried == [task()] and publisher.steps == [DeliveryStep(task())]


async def test_an_attempt_neither_settled_nor_handed_over_is_reported() -> None:
    here = first_attempts(FakeEngine(Outcome.UNSETTLED), FakePublisher(fail=True))
    assert here.reserve(1, M1)
    assert not await here.run([task()], M1)
    assert here.reserve(3, M1)


async def test_an_ended_attempts_room_comes_back_while_its_slow_sibling_runs() -> None:
    """The room counts attempts running: an event's quick delivery gives its part back when
    its attempt ends, not when its slow sibling's does (the message's slot stays taken)."""
    engine = FakeEngine(Outcome.SETTLED, slow={"del_slow": asyncio.Event()})
    here = first_attempts(engine)
    assert here.reserve(2, M1)
    running = asyncio.create_task(here.run([task("del_quick"), task("del_slow")], M1))
    await asyncio.sleep(0.01)
    assert here.reserve(2, M2)  # the quick one's attempt ended: 1 + 2 ≤ 3
    engine.slow["del_slow"].set()
    assert await running
    here.release(2, M2)
    assert here.reserve(3, M3)  # all of it back


async def test_a_redelivered_copy_whose_republish_is_refused_is_left_to_the_reconciler() -> None:
    # A broker failover: the sender queue has no leader and nacks every publish. Requeued,
    # the copy came back at once to the same nack until its delivery limit made it poison;
    # its deliveries are PENDING in PostgreSQL, which the reconciler re-drives.
    repo = FakeDispatchRepo(
        context(dispatched_at=NOW), pending=[PendingStep("del_a", "dest_1", 0, 1)]
    )
    publisher = FakePublisher(fail=True)
    verdict = await dispatcher(repo, publisher, FakeFirstAttempts()).handle(
        event(), redelivered=True
    )
    assert verdict is Verdict.ACK
