"""Crashes, shutdowns, backpressure and send-time SSRF: each test owns its sender processes.

All run on `isolated_pipeline` (a dispatcher alone, backpressure limit 3), so no other
sender replica can pick up a task the test means to watch.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from harness.receiver import Receiver
from harness.waiting import eventually
from tests.pipeline.conftest import BACKPRESSURE_LIMIT
from tests.support import factories
from tests.support.connection_counter import ConnectionCounter
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e


async def test_sigkilled_sender_in_flight_delivery_is_redelivered_and_completes(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    await factories.make_endpoint(
        db_pool, org.organizationId, receiver.script("/slow-kill", [200], 3.0)
    )
    doomed = await isolated_pipeline.stack.add_sender()
    event = factories.event_message(org.organizationId)
    await isolated_pipeline.publish(event)

    [first] = await receiver.wait_for("/slow-kill", 1)
    # SIGKILL while the POST is in flight
    assert await isolated_pipeline.stack.kill(doomed) == -signal.SIGKILL
    [delivery] = await factories.deliveries_of(db_pool, event.id)
    assert delivery["status"] == "PENDING" and delivery["attempt_count"] == 0

    replacement = await isolated_pipeline.stack.add_sender()
    try:
        requests = await receiver.wait_for("/slow-kill", 2, timeout=20)
        [delivery] = await factories.deliveries_when(db_pool, event.id, factories.succeeded)
    finally:
        await isolated_pipeline.stack.remove(replacement)
    # Same attempt again (at-least-once): same delivery id, same eventId, recorded once.
    assert [r.headers["X-Webhook-Delivery"] for r in requests] == [delivery["id"]] * 2
    assert requests[1].json()["eventId"] == first.json()["eventId"] == event.id
    [attempt] = await factories.attempts_of(db_pool, delivery["id"])
    assert attempt["succeeded"] is True and delivery["attempt_count"] == 1


async def test_sigterm_finishes_in_flight_deliveries_and_exits_zero(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver, forget_orgs
) -> None:
    # Two orgs: the isolated dispatcher's backpressure limit (3 pending) is per org.
    org, late_org = await make_org(), await make_org()
    url = receiver.script("/slow-term", [200], delay_s=2.0)
    for each in (org, late_org):
        forget_orgs(each.organizationId)
        await factories.make_endpoint(db_pool, each.organizationId, url)
    sender = await isolated_pipeline.stack.add_sender()
    events = [factories.event_message(org.organizationId) for _ in range(3)]
    for event in events:
        await isolated_pipeline.publish(event)
    await receiver.wait_for("/slow-term", 3)

    signalled_at = time.monotonic()
    sender.signal(signal.SIGTERM)
    await eventually(
        lambda: asyncio.to_thread(sender.log_tail),
        lambda tail: "stopping: finishing in-flight work" in tail,
        timeout=5,
    )
    await asyncio.sleep(0.3)
    # Published while it drains: a stopping sender takes nothing new.
    late = [factories.event_message(late_org.organizationId) for _ in range(2)]
    for event in late:
        await isolated_pipeline.publish(event)

    exit_code = await asyncio.to_thread(sender.wait, 30)
    assert exit_code == 0, sender.log_tail()
    # It waited for the in-flight POSTs (2 s each) instead of dropping them.
    assert time.monotonic() - signalled_at >= 1.0
    for event in events:
        [delivery] = await factories.deliveries_of(db_pool, event.id)
        assert delivery["status"] == "SUCCEEDED", delivery
        [attempt] = await factories.attempts_of(db_pool, delivery["id"])
        assert attempt["succeeded"] is True
    assert len(receiver.on("/slow-term")) == 3
    for event in late:
        [delivery] = await factories.deliveries_of(db_pool, event.id)
        assert delivery["status"] == "PENDING" and delivery["attempt_count"] == 0
    # Nothing in flight was left behind; the late tasks wait in the queue for a replica.
    sender_queue = isolated_pipeline.topology.sender_queue.name
    assert await isolated_pipeline.queue_depth(sender_queue) == len(late)

    successor = await isolated_pipeline.stack.add_sender()
    try:
        await receiver.wait_for("/slow-term", 5)
        for event in late:
            await factories.deliveries_when(db_pool, event.id, factories.succeeded)
    finally:
        await isolated_pipeline.stack.remove(successor)


async def test_backpressure_drops_events_and_counts_them_once_per_org_and_hour(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, forget_orgs
) -> None:
    crowded, calm = await make_org(), await make_org()
    forget_orgs(crowded.organizationId)
    forget_orgs(calm.organizationId)
    url = "http://127.0.0.1:9/never-called"
    crowded_endpoint = await factories.make_endpoint(db_pool, crowded.organizationId, url)
    calm_endpoint = await factories.make_endpoint(db_pool, calm.organizationId, url)
    for _ in range(BACKPRESSURE_LIMIT + 1):
        await factories.insert_pending_delivery(
            db_pool, crowded.organizationId, crowded_endpoint.id
        )
    for _ in range(BACKPRESSURE_LIMIT):  # at the limit, not over it
        await factories.insert_pending_delivery(db_pool, calm.organizationId, calm_endpoint.id)

    dropped = [factories.event_message(crowded.organizationId) for _ in range(3)]
    kept = factories.event_message(calm.organizationId)
    for event in [*dropped, kept]:
        await isolated_pipeline.publish(event)

    for event in [*dropped, kept]:
        await factories.dispatched(db_pool, event.id)
    for event in dropped:
        assert await factories.deliveries_of(db_pool, event.id) == []
    assert len(await factories.deliveries_of(db_pool, kept.id)) == 1

    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    rows = await db_pool.fetch(
        "SELECT organization_id, action, details, dedup_key FROM audit_log"
        " WHERE action = 'events.dropped.backpressure'"
        " AND organization_id = ANY($1::text[])",
        [crowded.organizationId, calm.organizationId],
    )
    assert len(rows) == 1
    [row] = rows
    assert row["organization_id"] == crowded.organizationId
    assert row["dedup_key"] == hour
    details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
    assert details == {"dropped": 3, "hour": hour}


async def test_held_deliveries_count_toward_backpressure_and_parked_ones_do_not(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, forget_orgs
) -> None:
    """An ordered line whose head keeps failing piles HELD deliveries up: they count with the
    PENDING ones, so the org's next event is dropped once they are over the limit. PARKED
    ones still do not count (at the limit with them, an org's event is kept)."""
    crowded, calm = await make_org(), await make_org()
    forget_orgs(crowded.organizationId)
    forget_orgs(calm.organizationId)
    url, ordered = "http://127.0.0.1:9/never-called", {"orderedDelivery": True}
    endpoints = {}
    for org in (crowded, calm):
        made = await factories.make_endpoint(db_pool, org.organizationId, url, config=ordered)
        endpoints[org.organizationId] = made.id

    async def insert(org_id: str, status: str, count: int) -> None:
        for _ in range(count):
            await factories.insert_pending_delivery(
                db_pool, org_id, endpoints[org_id], status=status, ordering_key="k"
            )

    await insert(crowded.organizationId, "PENDING", 1)  # the line's head, failing
    await insert(crowded.organizationId, "HELD", BACKPRESSURE_LIMIT)  # over the limit with it
    await insert(calm.organizationId, "HELD", BACKPRESSURE_LIMIT)  # at the limit, not over
    await insert(calm.organizationId, "PARKED", 2)

    dropped = factories.event_message(crowded.organizationId)
    kept = factories.event_message(calm.organizationId)
    for event in (dropped, kept):
        await isolated_pipeline.publish(event)
    for event in (dropped, kept):
        await factories.dispatched(db_pool, event.id)
    assert await factories.deliveries_of(db_pool, dropped.id) == []
    assert len(await factories.deliveries_of(db_pool, kept.id)) == 1
    audited = await db_pool.fetchval(
        "SELECT array_agg(organization_id) FROM audit_log"
        " WHERE action = 'events.dropped.backpressure' AND organization_id = ANY($1::text[])",
        [crowded.organizationId, calm.organizationId],
    )
    assert audited == [crowded.organizationId]


async def test_prod_sender_refuses_loopback_at_send_time_without_connecting(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, forget_orgs
) -> None:
    counter = await ConnectionCounter().start()
    org = await make_org()
    forget_orgs(org.organizationId)
    # Stored straight into the database: registration would have refused them.
    literal = await factories.make_endpoint(
        db_pool, org.organizationId, f"https://127.0.0.1:{counter.port}/hook", ["export.ready"]
    )
    named = await factories.make_endpoint(
        db_pool, org.organizationId, f"https://localhost:{counter.port}/hook", ["export.ready"]
    )
    sender = await isolated_pipeline.stack.add_sender(HOOKPOST_ENV="prod")
    try:
        event = factories.event_message(
            org.organizationId, "export.ready", {"exportFileId": "ef_9"}
        )
        await isolated_pipeline.publish(event)
        rows = await factories.deliveries_when(
            db_pool, event.id, lambda rows: len(rows) == 2 and all(r["attempt_count"] for r in rows)
        )
        errors = {}
        for row in rows:
            first = (await factories.attempts_of(db_pool, row["id"]))[0]
            assert first["succeeded"] is False and first["http_status"] is None
            errors[row["endpoint_id"]] = first["error"]
        assert "non-public address (127.0.0.1)" in errors[literal.id]
        assert "non-public address" in errors[named.id]
        assert all(error.startswith("refused") for error in errors.values())
        await asyncio.sleep(0.3)
        assert counter.connections == 0
    finally:
        await isolated_pipeline.stack.remove(sender)
        await counter.stop()


async def test_prod_sender_delivers_to_an_explicitly_allowed_private_cidr(
    isolated_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    receiver = await Receiver(tls_dir=tmp_path).start()
    org = await make_org()
    await factories.make_endpoint(db_pool, org.organizationId, receiver.script("/allowed", [200]))
    sender = await isolated_pipeline.stack.add_sender(
        HOOKPOST_ENV="prod",
        HOOKPOST_ALLOWED_PRIVATE_CIDRS='["127.0.0.0/8"]',
        SSL_CERT_FILE=str(receiver.ca_path),  # trust the test receiver's certificate
    )
    try:
        event = factories.event_message(org.organizationId)
        await isolated_pipeline.publish(event)
        [request] = await receiver.wait_for("/allowed", 1)
        assert request.json()["eventId"] == event.id
        [delivery] = await factories.delivered(db_pool, event.id)
        assert delivery["status"] == "SUCCEEDED"
    finally:
        await isolated_pipeline.stack.remove(sender)
        await receiver.stop()
