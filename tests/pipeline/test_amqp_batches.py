"""AMQP producers' batches: one message carrying many events (a JSON array, docs/producers.md)
through the real dispatcher and sender. The good events are delivered; a bad one goes where
a bad single message goes: kept as poison on its own, and replayable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from harness.receiver import Receiver
from harness.waiting import eventually
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra.broker.messages import batch_body
from tests.pipeline.conftest import one_of_each
from tests.pipeline.test_poison import hookpost, kept, publish_raw
from tests.support.factories import delivered, dispatched, event_message, make_endpoint
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture
async def pipe(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async for pipeline in one_of_each(test_env, "amqpbatch"):
        yield pipeline


async def test_a_batch_message_delivers_its_good_events_and_poisons_its_bad_ones(
    pipe: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org(Plan.PRO)
    url = receiver.url("/amqp-batch")
    await make_endpoint(db_pool, org.organizationId, url)
    good = [event_message(org.organizationId, data={"n": n}) for n in range(5)]
    stranger = event_message(new_id(IdPrefix.ORGANIZATION))  # an organization nobody created
    malformed = {"id": "evt_malformed", "type": "mapping.completed"}  # no org, no createdAt
    items = [orjson.loads(batch_body([e]))[0] for e in good]
    items[2:2] = [malformed, orjson.loads(stranger.to_bytes())]
    events = pipe.topology.events_exchange.name
    await publish_raw(pipe, events, "anything", orjson.dumps(items))

    arrived = await receiver.wait_for("/amqp-batch", len(good), timeout=30)
    assert sorted(r.json()["eventId"] for r in arrived) == sorted(e.id for e in good)
    for event in good:
        await delivered(db_pool, event.id)

    dead_events = pipe.topology.dead_events_queue.name
    ours = {"evt_malformed", stranger.id}
    rows = await eventually(
        lambda: kept(db_pool, dead_events),
        lambda rows: ours <= {row["message_id"] for row in rows},
    )
    by_id = {row["message_id"]: row for row in rows if row["message_id"] in ours}
    assert len([row for row in rows if row["message_id"] in ours]) == 2  # each kept once
    # Each kept alone, as a single message of that event would be.
    assert orjson.loads(bytes(by_id["evt_malformed"]["body"])) == malformed
    assert orjson.loads(bytes(by_id[stranger.id]["body"]))["id"] == stranger.id
    assert {(row["reason"], row["exchange"]) for row in rows} == {("rejected", events)}
    assert by_id[stranger.id]["routing_key"] == "mapping.completed"

    # The organization exists now: the replayed event is dispatched like any other.
    await db_pool.execute(
        "INSERT INTO organizations (id, name, plan) VALUES ($1, 'late', 'FREE')",
        stranger.organization_id,
    )
    replayed = hookpost(pipe, "poison", "replay", str(by_id[stranger.id]["id"]))
    assert json.loads(replayed) == {"replayed": 1}
    await dispatched(db_pool, stranger.id)
    assert len(receiver.on("/amqp-batch")) == len(good)  # nothing delivered twice


async def test_a_message_that_is_not_a_batch_of_1_to_500_is_poison_whole(
    pipe: Pipeline, db_pool: asyncpg.Pool
) -> None:
    events = pipe.topology.events_exchange.name
    await publish_raw(pipe, events, "batch", b"[]")
    await publish_raw(pipe, events, "batch", b"[{")
    dead_events = pipe.topology.dead_events_queue.name
    await eventually(
        lambda: kept(db_pool, dead_events),
        lambda rows: {bytes(row["body"]) for row in rows} >= {b"[]", b"[{"},
    )
