"""The dispatcher's own first attempts, through real processes: a delivery reaches its
endpoint with no sender running, its retry still goes through the broker to a sender, and a
dispatcher killed in the middle of a first attempt loses nothing (services/dispatcher/
first_attempts.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import asyncpg
import pytest

from harness.metrics import metric_value
from harness.receiver import Receiver
from harness.waiting import eventually
from libs.infra.broker.messages import batch_body
from tests.pipeline.test_poison import publish_raw
from tests.support.factories import (
    attempts_of,
    deliveries_of,
    deliveries_when,
    event_message,
    event_to,
    make_endpoint,
    succeeded,
)
from tests.support.stacks import Pipeline


@pytest.fixture
async def dispatcher_alone(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[Pipeline]:
    """A dispatcher with first attempts on (the default) and no sender, on its own prefix."""
    async with Pipeline(test_env, "first") as pipe:
        await pipe.stack.add_dispatcher()
        yield pipe


async def test_the_dispatcher_posts_a_first_attempt_with_no_sender_running(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    event = await event_to(make_org, db_pool, receiver.script("/here", [200]))
    await dispatcher_alone.publish(event)

    [request] = await receiver.wait_for("/here", 1)
    [delivery] = await deliveries_when(db_pool, event.id, succeeded)
    assert request.headers["X-Webhook-Delivery"] == delivery["id"]
    [attempt] = await attempts_of(db_pool, delivery["id"])
    assert attempt["succeeded"] and attempt["attempt_number"] == 1
    [dispatcher] = dispatcher_alone.stack.dispatchers
    assert metric_value(dispatcher, "hookpost_dispatcher_first_attempts_total") == 1
    assert await dispatcher_alone.queue_depth(dispatcher_alone.topology.sender_queue.name) == 0


async def test_a_burst_of_fanned_out_events_is_posted_by_the_dispatcher_itself(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """The room for first attempts holds the events a dispatcher may keep (half its
    prefetch) at a fan-out of 10: a burst within that, all of it in flight at once against
    a slow endpoint, goes out from here and none of it through the sender queue (where an
    attempt costs twice the CPU: BENCHMARKS.md round 8)."""
    # 600 attempts in flight together, more than a room of 256, and within what each endpoint
    # takes at once at first (libs/delivery/limits.py INITIAL)
    events, fanout = 20, 30
    org = await make_org()
    url = receiver.script("/burst", [200], delay_s=0.5)
    for _ in range(fanout):
        await make_endpoint(db_pool, org.organizationId, url)
    await asyncio.gather(
        *(dispatcher_alone.publish(event_message(org.organizationId)) for _ in range(events))
    )

    [dispatcher] = dispatcher_alone.stack.dispatchers

    async def made_here_and_queued() -> tuple[float, float]:
        return (
            metric_value(dispatcher, "hookpost_dispatcher_first_attempts_total"),
            metric_value(dispatcher, "hookpost_dispatcher_deliveries_published_total"),
        )

    here, queued = await eventually(
        made_here_and_queued, lambda counts: sum(counts) >= events * fanout
    )
    assert (here, queued) == (events * fanout, 0)
    assert await dispatcher_alone.queue_depth(dispatcher_alone.topology.sender_queue.name) == 0
    assert len(await receiver.wait_for("/burst", events * fanout)) == events * fanout


async def test_a_batch_messages_events_share_one_slot_of_the_room(
    test_env: dict[str, str], make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """The room counts messages, as the prefetch does: with room for one message (prefetch
    2), all ten events of one batch message get their first attempts here, in flight together
    (counted by event, the first would have filled the room and nine gone the long way)."""
    events = 10
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/batch", [200], delay_s=0.5))
    async with Pipeline(test_env, "firstbatch") as pipe:
        dispatcher = await pipe.stack.add_dispatcher(HOOKPOST_DISPATCHER_PREFETCH="2")
        batch = [event_message(org.organizationId) for _ in range(events)]
        await publish_raw(pipe, pipe.topology.events_exchange.name, "any", batch_body(batch))
        assert len(await receiver.wait_for("/batch", events)) == events
        for event in batch:
            await deliveries_when(db_pool, event.id, succeeded)
        assert metric_value(dispatcher, "hookpost_dispatcher_first_attempts_total") == events
        assert metric_value(dispatcher, "hookpost_dispatcher_deliveries_published_total") == 0
        assert await pipe.queue_depth(pipe.topology.sender_queue.name) == 0


async def test_a_slow_endpoints_first_attempts_are_made_here_too(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """An endpoint answering after 1 s gets its first attempts from the dispatcher, as a
    quick one does, with no sender running: the room holds its events' messages meanwhile,
    and none of it takes the sender queue's far costlier round trip (BENCHMARKS.md,
    "Session 11": handed to the senders, a 2 s endpoint's first attempts cost the whole
    machine its CPU)."""
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/quick", [200]))
    await make_endpoint(db_pool, org.organizationId, receiver.script("/long", [200], delay_s=1.0))
    first = [event_message(org.organizationId) for _ in range(4)]
    await asyncio.gather(*(dispatcher_alone.publish(e) for e in first))
    for event in first:  # four attempts of 1 s each, made here: its slowness is known
        await deliveries_when(db_pool, event.id, lambda rows: len(rows) == 2 and succeeded(rows))

    later = [event_message(org.organizationId) for _ in range(20)]
    await asyncio.gather(*(dispatcher_alone.publish(e) for e in later))
    for event in later:
        await deliveries_when(db_pool, event.id, lambda rows: len(rows) == 2 and succeeded(rows))
    [dispatcher] = dispatcher_alone.stack.dispatchers
    assert metric_value(dispatcher, "hookpost_dispatcher_first_attempts_total") == 24 * 2
    assert metric_value(dispatcher, "hookpost_dispatcher_deliveries_published_total") == 0
    assert await dispatcher_alone.queue_depth(dispatcher_alone.topology.sender_queue.name) == 0
    assert len(receiver.on("/long")) == len(receiver.on("/quick")) == 24


async def test_a_new_slow_endpoints_crowd_waits_for_its_first_answers_and_goes_from_here(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """More events at once than a new endpoint's first slots (libs/delivery/limits.py
    INITIAL), to an endpoint answering after 1 s: the rest wait in the dispatcher for its
    first answers, then go by the clock's slow start, none of it deferred through a retry
    tier (with no sender running here, a deferred step would never arrive)."""
    events = 100
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/new", [200], delay_s=1.0))
    batch = [event_message(org.organizationId) for _ in range(events)]
    await asyncio.gather(*(dispatcher_alone.publish(e) for e in batch))

    assert len(await receiver.wait_for("/new", events, timeout=20)) == events
    [dispatcher] = dispatcher_alone.stack.dispatchers
    assert metric_value(dispatcher, "hookpost_delivery_deferred_total", 'service="dispatcher"') == 0
    assert metric_value(dispatcher, "hookpost_dispatcher_first_attempts_total") == events


async def test_a_failed_first_attempt_is_retried_by_a_sender(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    event = await event_to(make_org, db_pool, receiver.script("/retry", [500, 200]))
    await dispatcher_alone.publish(event)

    [delivery] = await deliveries_when(
        db_pool, event.id, lambda rows: bool(rows) and rows[0]["attempt_count"] == 1
    )
    assert delivery["status"] == "PENDING" and delivery["next_attempt_at"] is not None
    # The retry waits in the broker (its tier, then the sender queue) for a sender.
    await dispatcher_alone.stack.add_sender()
    [delivery] = await deliveries_when(db_pool, event.id, succeeded)
    attempts = await attempts_of(db_pool, delivery["id"])
    assert [(a["attempt_number"], a["http_status"]) for a in attempts] == [(1, 500), (2, 200)]
    assert len(receiver.on("/retry")) == 2


async def test_a_dispatcher_killed_during_a_first_attempt_loses_nothing(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    event = await event_to(make_org, db_pool, receiver.script("/killed", [200], delay_s=2.0))
    await dispatcher_alone.publish(event)

    await receiver.wait_for("/killed", 1)
    [doomed] = dispatcher_alone.stack.dispatchers
    # SIGKILL while the POST is in flight: the event is marked dispatched
    assert await dispatcher_alone.stack.kill(doomed) == -signal.SIGKILL
    [delivery] = await deliveries_of(db_pool, event.id)
    assert delivery["status"] == "PENDING" and delivery["attempt_count"] == 0
    assert (
        await db_pool.fetchval("SELECT dispatched_at FROM events WHERE id = $1", event.id)
        is not None
    )

    # The event's message was never acknowledged: the broker hands it to the next
    # dispatcher, which finds the event dispatched and its delivery unattempted.
    await dispatcher_alone.stack.add_sender()
    successor = await dispatcher_alone.stack.add_dispatcher()
    await receiver.wait_for("/killed", 2)
    [delivery] = await deliveries_when(db_pool, event.id, succeeded)
    assert [a["attempt_number"] for a in await attempts_of(db_pool, delivery["id"])] == [1]
    assert metric_value(successor, "hookpost_dispatcher_events_total", 'outcome="recovered"') == 1


async def test_two_dispatchers_given_every_event_twice_post_each_delivery_once(
    dispatcher_alone: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """A copy delivered for the first time (not redelivered) of a dispatched event only
    acks: its twin's first attempts are not repeated, nor handed to the sender queue (the
    receiver's 0.5 s keeps each attempt in flight while the other copy arrives)."""
    await dispatcher_alone.stack.add_dispatcher()
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/twins", [200], delay_s=0.5))
    events = [event_message(org.organizationId) for _ in range(20)]
    await asyncio.gather(*(dispatcher_alone.publish(e) for e in events + events))

    await receiver.wait_for("/twins", 20)
    for event in events:
        await deliveries_when(db_pool, event.id, lambda rows: len(rows) == 1 and succeeded(rows))
    await asyncio.sleep(1.0)  # a second POST, had one been made, would have arrived
    assert sorted(r.json()["eventId"] for r in receiver.on("/twins")) == sorted(
        e.id for e in events
    )
    assert await dispatcher_alone.queue_depth(dispatcher_alone.topology.sender_queue.name) == 0
    first, second = dispatcher_alone.stack.dispatchers
    made = [metric_value(p, "hookpost_dispatcher_first_attempts_total") for p in (first, second)]
    assert sum(made) == 20
