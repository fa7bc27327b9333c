"""Sharded work queues (HOOKPOST_SENDER_SHARDS=3) through a real dispatcher, two real senders
and the real retry tiers: every shard carries work, each delivery arrives once, an endpoint's
retries come back to its own shard, a delivery out of attempts is DEAD, an ordered line keeps
its order. Every first attempt goes through the shards (HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0),
and which queue a sender took each task from is its `hookpost_sender_tasks_total{queue}`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from harness.metrics import sample, scrape
from harness.receiver import Receiver
from harness.waiting import eventually
from libs.domain.plans import Plan
from tests.pipeline.test_ordering import (
    ORDERED,
    Failing,
    accept,
    assert_in_line,
    publish_in_reverse_until_delivered,
)
from tests.support.factories import attempts_of, deliveries_when, event_message, make_endpoint
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

SHARDS = 3
# Tiers 1m/5m/30m become 0.3 s / 1.5 s / 9 s: a DEAD delivery in about 11 s.
SCALE = 0.005


@pytest.fixture(scope="module")
async def sharded(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    env = {
        "HOOKPOST_SENDER_SHARDS": str(SHARDS),
        "HOOKPOST_DISPATCHER_FIRST_ATTEMPTS": "0",
        "HOOKPOST_RETRY_DELAY_SCALE": str(SCALE),
    }
    async with Pipeline(test_env, "shards", **env) as pipe:
        await pipe.stack.start(api=False, dispatchers=1, senders=2)
        yield pipe


def taken(pipe: Pipeline) -> Counter[str]:
    """Tasks the senders took so far, by work queue (the shards and the drained old queue)."""
    texts = [scrape(sender) for sender in pipe.stack.senders]
    queues = [q.name for q in pipe.topology.sender_queues] + [pipe.topology.sender_queue.name]
    return Counter(
        {
            queue: sum(
                sample(text, "hookpost_sender_tasks_total", f'queue="{queue}"') for text in texts
            )
            for queue in queues
        }
    )


async def quiet(pipe: Pipeline) -> None:
    """Once nothing is queued, waiting (a retry tier, the delay ladder) or in flight: what a
    test counts from here is its own (a step of an earlier test requeued or deferred would
    count too)."""
    topology = pipe.topology
    queues = [q.name for q in topology.sender_queues + topology.retry_queues()]
    ladder = [q.name for q in topology.defer_queues()]  # declared at the first deferral

    async def left() -> float:
        depth = sum([await pipe.queue_depth(name) for name in queues])
        depth += sum([await pipe.queue_depth(name, missing_ok=True) for name in ladder])
        texts = [scrape(sender) for sender in pipe.stack.senders]
        return depth + sum(sample(text, "hookpost_sender_in_flight") for text in texts)

    await eventually(left, lambda n: n == 0)


async def test_every_shard_carries_work_and_each_delivery_arrives_once(
    sharded: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org(Plan.PRO_MAX)
    # 30 endpoints on 3 shards: one shard left empty by chance is (2/3)^30 × 3 ≈ 1.5e-5.
    for n in range(30):
        await make_endpoint(db_pool, org.organizationId, receiver.url(f"/fan/{n}"))
    await quiet(sharded)
    before = taken(sharded)
    events = [event_message(org.organizationId) for _ in range(4)]
    for event in events:
        await sharded.publish(event)

    for event in events:
        rows = await deliveries_when(
            db_pool,
            event.id,
            lambda rows: len(rows) == 30 and all(r["status"] == "SUCCEEDED" for r in rows),
        )
        assert all(r["attempt_count"] == 1 for r in rows)
    arrivals = Counter(
        (r.json()["eventId"], r.path) for r in receiver.requests if r.path.startswith("/fan/")
    )
    assert len(arrivals) == 120 and set(arrivals.values()) == {1}, "each delivery once"
    grew = taken(sharded) - before
    # at least once: a step requeued (the database away) or deferred is taken again
    assert sum(grew.values()) >= 120
    assert all(grew[q.name] > 0 for q in sharded.topology.sender_queues), grew
    assert grew[sharded.topology.sender_queue.name] == 0, "nothing reaches the old queue"


async def test_retries_come_back_to_their_shard_and_a_delivery_out_of_attempts_is_dead(
    sharded: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    flaky = await make_endpoint(
        db_pool, org.organizationId, receiver.script("/flaky", [500, 500, 200])
    )
    await quiet(sharded)
    before = taken(sharded)
    event = event_message(org.organizationId)
    await sharded.publish(event)
    [delivery] = await deliveries_when(
        db_pool, event.id, lambda rows: len(rows) == 1 and rows[0]["status"] == "SUCCEEDED"
    )
    assert delivery["endpoint_id"] == flaky.id and delivery["attempt_count"] == 3
    grew = +(taken(sharded) - before)
    assert len(grew) == 1 and grew.total() >= 3, f"all three attempts from one shard: {grew}"

    other = await make_org()  # this endpoint alone
    down = await make_endpoint(db_pool, other.organizationId, receiver.script("/down", [503]))
    await quiet(sharded)
    before = taken(sharded)
    event = event_message(other.organizationId)
    await sharded.publish(event)
    rows = await deliveries_when(
        db_pool,
        event.id,
        lambda rows: len(rows) == 1 and rows[0]["status"] != "PENDING",
        timeout=40,
    )
    [dead] = rows
    assert dead["endpoint_id"] == down.id
    assert dead["status"] == "DEAD" and dead["attempt_count"] == 4
    assert [a["http_status"] for a in await attempts_of(db_pool, dead["id"])] == [503] * 4
    grew = +(taken(sharded) - before)
    assert len(grew) == 1 and grew.total() >= 4, f"its four attempts from one shard: {grew}"
    dead_queue = sharded.topology.dead_deliveries_queue.name
    await eventually(lambda: sharded.queue_depth(dead_queue), lambda depth: depth == 0)


async def test_an_ordered_line_keeps_its_order_across_shards(
    sharded: Pipeline, make_org, forget_orgs, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    forget_orgs(org.organizationId)
    behaviour = Failing()
    url = receiver.behave("/ordered", behaviour)
    await make_endpoint(db_pool, org.organizationId, url, config=ORDERED)
    lines = {
        key: [await accept(db_pool, org.organizationId, key) for _ in range(4)]
        for key in ("a", "b")
    }
    behaviour.first.update({lines["a"][1].id, lines["b"][0].id})  # their first attempts fail
    accepted = [event for line in lines.values() for event in line]
    await publish_in_reverse_until_delivered(sharded, db_pool, accepted)
    for line in lines.values():
        assert_in_line(receiver.records, [event.id for event in line])
