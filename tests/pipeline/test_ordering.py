"""Ordered delivery through the real dispatcher and two real sender replicas (issue 19, 5).

A receiver that fails some attempts checks what an ordered endpoint promises: the events of
one ordering key arrive one at a time, in event id order, each only after the one before it
succeeded; a failing key holds back only itself; other keys, events without a key and
unordered endpoints go as before. Retry tiers are scaled by 0.01 (1m → 0.6 s, 5m → 3 s).

Events are accepted as the api accepts them: the row first (with its ordering key), then
the message (tests.support.factories.event_message, with the key).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise

import asyncpg
import pytest

from harness.receiver import Receiver
from harness.receiver.behaviours import Arrival, Reply
from harness.receiver.records import Record
from harness.waiting import eventually
from libs.infra.broker.messages import EventMessage
from tests.support.factories import deliveries_of, dispatched, event_message, make_endpoint
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

ORDERED = {"orderedDelivery": True}


@dataclass
class Failing:
    """500 on the first arrival of the events in `first`, and on every arrival of those in
    `always` (until the test takes them out); 200 otherwise."""

    first: set[str] = field(default_factory=set)
    always: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    def reply(self, arrival: Arrival) -> Reply:
        event_id = arrival.event_id or ""
        first_time = event_id not in self.seen
        self.seen.add(event_id)
        if event_id in self.always or (first_time and event_id in self.first):
            return Reply(500, "scripted failure")
        return Reply()


# An endpoint's target: (its org's id, its id, the behaviour answering it).
NewTarget = Callable[..., Awaitable[tuple[str, str, Failing]]]


@pytest.fixture
def failing_endpoint(make_org, forget_orgs, db_pool: asyncpg.Pool, receiver: Receiver) -> NewTarget:
    """A new org (forgotten after the test) with one endpoint to `path` on the receiver, answered
    as its `Failing` says: ordered unless `ordered=False`."""

    async def make(path: str, *, ordered: bool = True) -> tuple[str, str, Failing]:
        org = await make_org()
        forget_orgs(org.organizationId)
        behaviour = Failing()
        url = receiver.behave(path, behaviour)
        config = ORDERED if ordered else None
        endpoint = await make_endpoint(db_pool, org.organizationId, url, config=config)
        return org.organizationId, endpoint.id, behaviour

    return make


async def accept(pool: asyncpg.Pool, org_id: str, key: str | None) -> EventMessage:
    """An event stored as the api stores it (with its key), not published yet."""
    event = event_message(org_id).model_copy(update={"ordering_key": key})
    await pool.execute(
        "INSERT INTO events (id, organization_id, type, data, created_at, published_at,"
        " ordering_key) VALUES ($1, $2, $3, $4, $5, now(), $6)",
        event.id,
        event.organization_id,
        event.type,
        event.data,
        event.created_at,
        key,
    )
    return event


def assert_in_line(records: list[Record], line: list[str]) -> None:
    """The events of `line` (in id order) arrived one at a time: each one's first request
    came after the one before it was answered 200, and none came again after its own 200."""
    arrivals: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.event_id in line:
            arrivals[record.event_id].append(record)
    assert set(arrivals) == set(line), "every event of the line arrived"
    for before, after in pairwise(line):
        [success] = [r for r in arrivals[before] if r.status == 200]
        first = min(r.arrived for r in arrivals[after])
        assert success.answered is not None and first >= success.answered, (
            f"{after} arrived before {before} had succeeded"
        )
    for event_id in line:
        [success] = [r for r in arrivals[event_id] if r.status == 200]
        assert all(r.arrived <= success.arrived for r in arrivals[event_id])


async def statuses(pool: asyncpg.Pool, events: list[EventMessage]) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM deliveries WHERE event_id = ANY ($1::text[]) ORDER BY event_id",
        [e.id for e in events],
    )
    return [row["status"] for row in rows]


async def publish_in_reverse_until_delivered(
    pipeline: Pipeline, pool: asyncpg.Pool, accepted: list[EventMessage]
) -> None:
    """Published in reverse, so the dispatcher meets each key's later events first; returns
    once every delivery SUCCEEDED."""
    for event in reversed(accepted):
        await pipeline.publish(event)
    await eventually(
        lambda: statuses(pool, accepted),
        lambda found: found == ["SUCCEEDED"] * len(accepted),
        timeout=60,
    )


async def test_each_key_arrives_in_order_while_attempts_fail(
    pipeline: Pipeline, db_pool: asyncpg.Pool, receiver: Receiver, failing_endpoint: NewTarget
) -> None:
    org_id, _, behaviour = await failing_endpoint("/ordered")
    lines: dict[str, list[EventMessage]] = {key: [] for key in ("k1", "k2", "k3")}
    accepted: list[EventMessage] = []
    for _ in range(6):
        for key, line in lines.items():
            event = await accept(db_pool, org_id, key)
            line.append(event)
            accepted.append(event)
            if len(accepted) % 3 == 0:
                behaviour.first.add(event.id)  # every 3rd event's first attempt fails
    await publish_in_reverse_until_delivered(pipeline, db_pool, accepted)
    for line in lines.values():
        assert_in_line(receiver.records, [event.id for event in line])
    assert len(behaviour.first & behaviour.seen) == 6, "the failing attempts were made"


async def test_a_failing_key_holds_back_only_itself(
    pipeline: Pipeline, db_pool: asyncpg.Pool, receiver: Receiver, failing_endpoint: NewTarget
) -> None:
    org_id, _, behaviour = await failing_endpoint("/stuck")
    stuck = [await accept(db_pool, org_id, "stuck") for _ in range(3)]
    free = [await accept(db_pool, org_id, "free") for _ in range(5)]
    keyless = [await accept(db_pool, org_id, None) for _ in range(3)]
    behaviour.always.add(stuck[0].id)
    for event in stuck + free + keyless:
        await pipeline.publish(event)

    # The signal: every other event succeeded while the stuck key's head keeps failing.
    await eventually(
        lambda: statuses(db_pool, free + keyless),
        lambda found: found == ["SUCCEEDED"] * 8,
        timeout=30,
    )
    assert await statuses(db_pool, stuck) == ["PENDING", "HELD", "HELD"]
    arrived = {record.event_id for record in receiver.records}
    assert stuck[0].id in arrived and not arrived & {stuck[1].id, stuck[2].id}
    assert_in_line(receiver.records, [event.id for event in free])

    behaviour.always.clear()  # its next retry succeeds (or, on a slow machine, it died)
    await eventually(
        lambda: statuses(db_pool, stuck),
        lambda found: found[0] in ("SUCCEEDED", "DEAD") and found[1:] == ["SUCCEEDED"] * 2,
        timeout=30,
    )
    head_ended = max(r.answered or 0 for r in receiver.records if r.event_id == stuck[0].id)
    assert min(r.arrived for r in receiver.records if r.event_id == stuck[1].id) >= head_ended
    assert_in_line(receiver.records, [event.id for event in stuck[1:]])


async def test_an_earlier_event_not_yet_fanned_out_holds_the_later_one(
    pipeline: Pipeline, db_pool: asyncpg.Pool, receiver: Receiver, failing_endpoint: NewTarget
) -> None:
    org_id, _, _ = await failing_endpoint("/late")
    first = await accept(db_pool, org_id, "order-42")
    second = await accept(db_pool, org_id, "order-42")

    await pipeline.publish(second)
    await dispatched(db_pool, second.id)
    [held] = await deliveries_of(db_pool, second.id)
    assert held["status"] == "HELD" and held["ordering_key"] == "order-42"

    await pipeline.publish(first)
    await eventually(
        lambda: statuses(db_pool, [first, second]),
        lambda found: found == ["SUCCEEDED"] * 2,
    )
    assert_in_line(receiver.records, [first.id, second.id])


async def test_unordered_endpoints_and_keyless_events_are_untouched(
    pipeline: Pipeline, db_pool: asyncpg.Pool, receiver: Receiver, failing_endpoint: NewTarget
) -> None:
    """An endpoint without orderedDelivery gets keyed events at once, in parallel, and its
    deliveries carry no key (nothing of ordering is written for them)."""
    org_id, plain_id, behaviour = await failing_endpoint("/plain", ordered=False)
    events = [await accept(db_pool, org_id, "same") for _ in range(4)]
    behaviour.always.add(events[0].id)  # would hold the others back, were it ordered
    for event in events:
        await pipeline.publish(event)

    await eventually(
        lambda: statuses(db_pool, events[1:]), lambda found: found == ["SUCCEEDED"] * 3
    )
    rows = await db_pool.fetch(
        "SELECT status, ordering_key FROM deliveries WHERE endpoint_id = $1", plain_id
    )
    assert len(rows) == 4 and all(row["ordering_key"] is None for row in rows)
    assert "HELD" not in {row["status"] for row in rows}


def test_the_line_check_fails_on_an_overtaking_event() -> None:
    """assert_in_line, the tests' judge, catches a later event sent before an earlier one's
    success."""
    ok = Record("/x", "x", "evt_1", "del_1", arrived=1.0, peer_port=1, status=200, answered=1.1)
    early = replace(ok, event_id="evt_2", arrived=1.05, answered=1.2)
    with pytest.raises(AssertionError, match="before"):
        assert_in_line([ok, early], ["evt_1", "evt_2"])
    assert_in_line([ok, replace(early, arrived=1.2, answered=1.3)], ["evt_1", "evt_2"])
