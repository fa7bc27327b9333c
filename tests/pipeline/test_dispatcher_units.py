"""The dispatcher's handler logic, with fakes in place of Postgres and the broker (no services
needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from libs.infra.broker.messages import DeliveryStep, DeliveryTask, EventMessage
from libs.worker.consumers import Verdict
from services.dispatcher.handler import Dispatcher
from services.dispatcher.repository import (
    EventContext,
    EventDataError,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
)

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


# ---------------------------------------------------------------- dispatcher handler


@dataclass
class FakeLocks:
    repo: FakeDispatchRepo
    wait: bool
    held: list[str] = field(default_factory=list)

    async def __aenter__(self) -> FakeLocks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for event_id in self.held:
            self.repo.locks.pop(event_id).set()

    async def prepare(
        self, events: Sequence[EventMessage], pending_limit: int
    ) -> list[EventContext | None]:
        self.repo.prepared.append(([e.id for e in events], self.wait))
        contexts: list[EventContext | None] = []
        for event in events:
            ctx = self.repo.contexts.get(event.id, self.repo.ctx)
            if ctx is None:
                contexts.append(None)
                continue
            while self.wait and event.id in self.repo.locks:
                await self.repo.locks[event.id].wait()
            locked = event.id not in self.repo.locks
            if locked:
                self.repo.locks[event.id] = asyncio.Event()
                self.held.append(event.id)
            dispatched_at = NOW if event.id in self.repo.marked else ctx.dispatched_at
            contexts.append(replace(ctx, locked=locked, dispatched_at=dispatched_at))
        return contexts

    async def drop(self, event_ids: Sequence[str], hour: str) -> dict[str, int]:
        self.repo.drops.extend([hour] * len(event_ids))
        return {event_id: len(self.repo.drops) for event_id in event_ids}

    async def insert_deliveries(
        self, planned: Sequence[PlannedDeliveries], *, finished: Sequence[str] = ()
    ) -> dict[str, list[PendingDelivery] | None]:
        ids = [p.event_id for p in planned]
        self.repo.inserted.append(ids)
        if self.repo.poison in ids:
            raise EventDataError("invalid byte sequence")
        if self.repo.fail_insert:
            raise ConnectionError("postgres gone")
        earlier = [PendingDelivery(f"del_{e}", e) for e in self.repo.extra_pending]
        found = {
            p.event_id: None
            if self.repo.dispatched_under_lock or p.event_id in self.repo.marked
            else earlier
            + [PendingDelivery(d, e) for d, e in zip(p.delivery_ids, p.endpoint_ids, strict=True)]
            for p in planned
        }
        self.repo.marked_on_insert.append(list(finished))
        self.repo.marked.extend(event_id for event_id in finished if found[event_id] is not None)
        for event_id in finished:
            self.held.remove(event_id)
            self.repo.locks.pop(event_id).set()
        return found

    async def finish(self, event_ids: Sequence[str]) -> None:
        if self.repo.fail_finish:
            raise ConnectionError("postgres gone")
        self.repo.mark_calls.append(list(event_ids))
        self.repo.marked.extend(event_ids)
        await self.__aexit__()
        self.held.clear()


@dataclass
class FakeDispatchRepo:
    ctx: EventContext | None  # every event's, unless `contexts` names one
    contexts: dict[str, EventContext | None] = field(default_factory=dict)
    dispatched_under_lock: bool = False
    poison: str | None = None  # an event whose deliveries statement fails on its data
    marked: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    locks: dict[str, asyncio.Event] = field(default_factory=dict)
    prepared: list[tuple[list[str], bool]] = field(default_factory=list)
    inserted: list[list[str]] = field(default_factory=list)
    mark_calls: list[list[str]] = field(default_factory=list)  # finish
    marked_on_insert: list[list[str]] = field(default_factory=list)  # insert_deliveries
    fail_finish: bool = False
    fail_insert: bool = False
    extra_pending: list[str] = field(default_factory=list)  # an earlier run's, per endpoint
    pending: list[PendingStep] = field(default_factory=list)  # a dispatched event's

    def event_locks(self, *, wait: bool = False) -> FakeLocks:
        return FakeLocks(self, wait)

    async def pending_steps(self, event_id: str) -> list[PendingStep]:
        return list(self.pending)


@dataclass
class FakePublisher:
    fail: bool = False
    fail_events: set[str] = field(default_factory=set)
    tasks: list[DeliveryTask] = field(default_factory=list)
    steps: list[DeliveryStep] = field(default_factory=list)

    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None:
        await asyncio.sleep(0)  # confirms arrive later: the batch's other events go on
        if self.fail or any(s.task.event_id in self.fail_events for s in steps):
            raise ConnectionError("broker gone")
        self.steps.extend(steps)
        self.tasks.extend(step.task for step in steps)


def context(
    plan: str = "FREE", pending: int = 0, endpoints: Sequence[str] = ("dest_1",), **kw: Any
) -> EventContext:
    return EventContext(
        plan=plan,
        stored_organization_id=kw.get("stored"),
        dispatched_at=kw.get("dispatched_at"),
        pending=pending,
        endpoint_ids=list(endpoints),
    )


def event(event_type: str = "mapping.completed", **kw: Any) -> bytes:
    return EventMessage(
        id=kw.pop("event_id", "evt_1"),
        organization_id="org_1",
        type=event_type,
        data={"big": "y" * kw.pop("size", 1)},
        created_at=NOW,
        **kw,
    ).to_bytes()


def dispatcher(repo: FakeDispatchRepo, publisher: FakePublisher) -> Dispatcher:
    return Dispatcher(repo, publisher, pending_limit=3, payload_cap_bytes=1024, now=lambda: NOW)


async def handle_together(d: Dispatcher, *bodies: bytes) -> list[Verdict]:
    """Messages in flight at the same moment (one prefetch window)."""
    return list(await asyncio.gather(*(d.handle(body) for body in bodies)))


async def test_dispatcher_publishes_one_task_per_endpoint_then_marks_dispatched() -> None:
    repo, publisher = FakeDispatchRepo(context(endpoints=["dest_1", "dest_2"])), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event(size=2000)) is Verdict.ACK
    assert [t.endpoint_id for t in publisher.tasks] == ["dest_1", "dest_2"]
    assert len({t.delivery_id for t in publisher.tasks}) == 2
    assert publisher.tasks[0].data == {"truncated": True, "dataRef": "/api/v1/events/evt_1"}
    assert repo.marked == ["evt_1"] and repo.locks == {}


async def test_dispatcher_does_not_mark_dispatched_when_publishing_fails() -> None:
    repo = FakeDispatchRepo(context())
    verdict = await dispatcher(repo, FakePublisher(fail=True)).handle(event())
    assert verdict is Verdict.REQUEUE and not repo.marked and repo.locks == {}


async def test_dispatcher_rejects_unknown_orgs_and_malformed_messages() -> None:
    publisher = FakePublisher()
    assert await dispatcher(FakeDispatchRepo(None), publisher).handle(event()) is Verdict.REJECT
    assert await dispatcher(FakeDispatchRepo(context()), publisher).handle(b"[]") is Verdict.REJECT
    assert publisher.tasks == []


async def test_dispatcher_rejects_an_event_id_stored_for_another_organization() -> None:
    repo, publisher = FakeDispatchRepo(context(stored="org_other")), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event()) is Verdict.REJECT
    assert publisher.tasks == [] and not repo.marked


async def test_dispatcher_acks_duplicates_without_publishing() -> None:
    for repo in (
        FakeDispatchRepo(context(dispatched_at=NOW)),
        FakeDispatchRepo(context(), dispatched_under_lock=True),
    ):
        publisher = FakePublisher()
        assert await dispatcher(repo, publisher).handle(event()) is Verdict.ACK
        assert publisher.tasks == [] and not repo.marked


async def test_dispatcher_plan_gate() -> None:
    publisher = FakePublisher()
    repo = FakeDispatchRepo(context(plan="FREE"))
    assert await dispatcher(repo, publisher).handle(event("mapping.error.resolved")) is Verdict.ACK
    assert publisher.tasks == [] and repo.marked
    repo = FakeDispatchRepo(context(plan="PRO"))
    await dispatcher(repo, publisher).handle(event("mapping.error.resolved"))
    assert len(publisher.tasks) == 1


async def test_dispatcher_drops_over_the_pending_limit_and_counts_by_hour() -> None:
    repo, publisher = FakeDispatchRepo(context(pending=4)), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event()) is Verdict.ACK
    assert repo.drops == ["2026-11-22T12"] and publisher.tasks == []
    repo = FakeDispatchRepo(context(pending=3))  # at the limit: still delivered
    await dispatcher(repo, publisher).handle(event())
    assert repo.drops == [] and len(publisher.tasks) == 1


async def test_dispatcher_targeted_test_event_uses_the_given_delivery_id() -> None:
    repo, publisher = FakeDispatchRepo(context(pending=99)), FakePublisher()
    body = event("webhook.test", target_endpoint_id="dest_1", target_delivery_id="del_TARGET")
    assert await dispatcher(repo, publisher).handle(body) is Verdict.ACK
    assert [(t.delivery_id, t.endpoint_id) for t in publisher.tasks] == [("del_TARGET", "dest_1")]


async def test_a_report_jobs_outcome_is_held_to_the_pending_limit() -> None:
    """Addressed to its job's webhook, but no caller holds a delivery id: dropped like any
    event of an org over its limit (only a /test call is exempt)."""
    repo, publisher = FakeDispatchRepo(context(pending=4, endpoints=["rwh_1"])), FakePublisher()
    body = event("report.completed", target_endpoint_id="rwh_1")
    assert await dispatcher(repo, publisher).handle(body) is Verdict.ACK
    assert repo.drops == ["2026-11-22T12"] and publisher.tasks == []
    repo = FakeDispatchRepo(context(pending=3, endpoints=["rwh_1"]))
    assert await dispatcher(repo, publisher).handle(body) is Verdict.ACK
    assert [t.endpoint_id for t in publisher.tasks] == ["rwh_1"]


async def test_dispatcher_events_in_flight_together_share_each_statement() -> None:
    ids = [f"evt_{n}" for n in range(6)]
    repo, publisher = FakeDispatchRepo(context()), FakePublisher()
    repo.contexts = {"evt_4": None, "evt_5": context(pending=4)}  # unknown org, over limit
    verdicts = await handle_together(dispatcher(repo, publisher), *(event(event_id=i) for i in ids))
    assert verdicts == [Verdict.ACK] * 4 + [Verdict.REJECT, Verdict.ACK]
    assert repo.prepared == [(ids, False)]
    assert repo.inserted == [ids[:4]] and repo.mark_calls == [ids[:4]]
    assert repo.drops == ["2026-11-22T12"]
    assert sorted(t.event_id for t in publisher.tasks) == ids[:4]


async def test_dispatcher_one_unconfirmed_event_is_requeued_alone() -> None:
    repo, publisher = FakeDispatchRepo(context()), FakePublisher(fail_events={"evt_b"})
    verdicts = await handle_together(
        dispatcher(repo, publisher), *(event(event_id=i) for i in ("evt_a", "evt_b", "evt_c"))
    )
    assert verdicts == [Verdict.ACK, Verdict.REQUEUE, Verdict.ACK]
    assert repo.mark_calls == [["evt_a", "evt_c"]] and repo.locks == {}


async def test_dispatcher_twin_waits_for_its_copy_alone_then_publishes_nothing() -> None:
    repo, publisher = FakeDispatchRepo(context()), FakePublisher()
    verdicts = await handle_together(
        dispatcher(repo, publisher), event(event_id="evt_a"), event(event_id="evt_a")
    )
    assert verdicts == [Verdict.ACK, Verdict.ACK]
    # never in one batch; the copy that found the lock taken waited for it, alone
    assert repo.prepared == [(["evt_a"], False), (["evt_a"], False), (["evt_a"], True)]
    assert [t.event_id for t in publisher.tasks] == ["evt_a"] and repo.marked == ["evt_a"]


async def test_dispatcher_one_events_bad_data_does_not_requeue_its_batch() -> None:
    repo, publisher = FakeDispatchRepo(context(), poison="evt_b"), FakePublisher()
    verdicts = await handle_together(
        dispatcher(repo, publisher), *(event(event_id=i) for i in ("evt_a", "evt_b", "evt_c"))
    )
    assert verdicts == [Verdict.ACK, Verdict.REQUEUE, Verdict.ACK]
    assert sorted(repo.marked) == ["evt_a", "evt_c"] and repo.locks == {}
    assert sorted(t.event_id for t in publisher.tasks) == ["evt_a", "evt_c"]
