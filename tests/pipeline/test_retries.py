"""Retry schedules through the real TTL tiers, and dead-lettering when they run out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import pairwise

import asyncpg
import pytest

from harness.receiver import Receiver
from libs.domain.plans import Plan
from tests.pipeline.conftest import one_of_each
from tests.support.factories import (
    attempts_of,
    delivered,
    deliveries_when,
    event_message,
    make_endpoint,
)
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

# Tiers for the exhaustion tests: 1m/5m/30m become 0.3 s / 1.5 s / 9 s.
DEAD_SCALE = 0.005


@pytest.fixture(scope="module")
async def dead_pipeline(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async for pipe in one_of_each(test_env, "dead", HOOKPOST_RETRY_DELAY_SCALE=str(DEAD_SCALE)):
        yield pipe


async def test_500_500_200_is_three_attempts_on_the_1m_and_5m_tiers(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    await make_endpoint(
        db_pool, org.organizationId, receiver.script("/flaky", [500, 500, 200]), ["export.ready"]
    )
    event = event_message(org.organizationId, "export.ready", {"exportFileId": "ef_1"})
    await pipeline.publish(event)

    requests = await receiver.wait_for("/flaky", 3, timeout=15)
    [delivery] = await delivered(db_pool, event.id)
    envelopes = [r.json() for r in requests]
    assert {e["eventId"] for e in envelopes} == {event.id}
    attempt_ids = [r.headers["X-Webhook-Delivery"] for r in requests]
    assert attempt_ids == [e["id"] for e in envelopes]
    assert len(set(attempt_ids)) == 3
    assert attempt_ids[0] == delivery["id"]
    # Scaled by 0.01: 1m → 0.6 s, 5m → 3 s.
    gaps = [later.received_at - earlier.received_at for earlier, later in pairwise(requests)]
    assert 0.55 <= gaps[0] <= 1.6, gaps
    assert 2.9 <= gaps[1] <= 4.5, gaps

    assert delivery["status"] == "SUCCEEDED"
    assert delivery["attempt_count"] == 3
    assert delivery["next_attempt_at"] is None
    attempts = await attempts_of(db_pool, delivery["id"])
    assert [a["attempt_number"] for a in attempts] == [1, 2, 3]
    assert [a["id"] for a in attempts] == attempt_ids
    assert [a["http_status"] for a in attempts] == [500, 500, 200]
    assert [a["succeeded"] for a in attempts] == [False, False, True]
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[0]["response_excerpt"] == "scripted failure"
    await asyncio.sleep(1.0)
    assert len(receiver.on("/flaky")) == 3


async def test_always_503_and_always_400_end_dead_after_four_attempts(
    dead_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org(Plan.PRO_MAX)
    await make_endpoint(
        db_pool, org.organizationId, receiver.script("/down", [503]), ["mapping.failed"]
    )
    await make_endpoint(
        db_pool, org.organizationId, receiver.script("/rejects", [400]), ["mapping.failed"]
    )
    # (An agent results sink's final 4xx — FAILED after one attempt — needs an agent that
    # opted in and a completed job of it: tests/e2e/test_agent_sinks_e2e.py.)
    event = event_message(org.organizationId, "mapping.failed", {"error": {"code": "X"}})
    await dead_pipeline.publish(event)

    rows = await deliveries_when(
        db_pool,
        event.id,
        lambda rows: len(rows) == 2 and all(r["status"] != "PENDING" for r in rows),
        timeout=30,
    )
    by_endpoint = {r["endpoint_id"]: r for r in rows}

    for path in ("/down", "/rejects"):
        requests = receiver.on(path)
        assert len(requests) == 4, path
        assert len({r.headers["X-Webhook-Delivery"] for r in requests}) == 4
        assert {r.json()["eventId"] for r in requests} == {event.id}
        gaps = [b.received_at - a.received_at for a, b in pairwise(requests)]
        # 0.3 s, 1.5 s, 9 s (1m, 5m, 30m scaled by 0.005)
        assert 0.25 <= gaps[0] <= 1.3 and 1.4 <= gaps[1] <= 3.0 and 8.8 <= gaps[2] <= 11.5, gaps
    expected_status = {"/down": 503, "/rejects": 400}
    for delivery in by_endpoint.values():
        assert delivery["status"] == "DEAD"
        assert delivery["attempt_count"] == 4
        attempts = await attempts_of(db_pool, delivery["id"])
        assert [a["attempt_number"] for a in attempts] == [1, 2, 3, 4]
        statuses = {a["http_status"] for a in attempts}
        assert len(statuses) == 1 and statuses <= set(expected_status.values())
        assert not any(a["succeeded"] for a in attempts)
    await asyncio.sleep(1.0)
    assert len(receiver.on("/down")) == 4 and len(receiver.on("/rejects")) == 4
    # Dead-lettered messages were consumed (and acknowledged) by the dead-letter consumer.
    assert await dead_pipeline.queue_depth(dead_pipeline.topology.dead_deliveries_queue.name) == 0
