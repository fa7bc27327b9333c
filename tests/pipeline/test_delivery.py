"""Delivery stories through the real dispatcher and two real sender replicas."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
import stripe

from harness.metrics import metric_value
from harness.receiver import Receiver, Redirect
from harness.waiting import eventually
from libs.domain.endpoint_kinds import EndpointStatus
from libs.domain.envelope import API_VERSION
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.domain.signing import SignatureVerificationError, parse_v1_header, verify_v1
from tests.support.factories import (
    attempts_of,
    delivered,
    deliveries_of,
    deliveries_when,
    dispatched,
    event_message,
    event_to,
    insert_event,
    make_endpoint,
)
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e


async def test_happy_path_envelope_headers_and_signature(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver, monkeypatch
) -> None:
    org = await make_org(Plan.PRO)
    url = receiver.script("/happy", [200])
    endpoint = await make_endpoint(
        db_pool,
        org.organizationId,
        url,
        api_key_name="X-Api-Key",
        api_key_value="key-123",
        additional_headers={
            "X-Team": "mapping",
            "x-webhook-event": "forged.event",
            "X-WEBHOOK-DELIVERY": "del_forged",
            "x-webhook-signature": "t=1,v1=forged",
            "content-type": "text/plain",
        },
    )
    event = event_message(
        org.organizationId, data={"mappingJobId": "job_7", "status": "COMPLETED", "rowCount": 4821}
    )
    await pipeline.publish(event)

    [request] = await receiver.wait_for("/happy", 1)
    envelope = request.json()
    assert list(envelope) == ["id", "eventId", "type", "apiVersion", "createdAt", "data"]
    assert envelope["eventId"] == event.id
    assert envelope["type"] == "mapping.completed"
    assert envelope["apiVersion"] == API_VERSION
    assert datetime.fromisoformat(envelope["createdAt"]) == event.created_at
    assert envelope["createdAt"].endswith("Z")
    assert envelope["data"] == event.data
    assert envelope["id"].startswith("del_")

    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-webhook-delivery"] == envelope["id"]
    assert headers["x-webhook-event"] == "mapping.completed"
    assert headers["content-type"] == "application/json"
    assert headers["x-api-key"] == "key-123"
    assert headers["x-team"] == "mapping"
    assert "traceparent" not in headers and "tracestate" not in headers

    signature = headers["x-webhook-signature"]
    assert "forged" not in signature
    timestamp, signatures = parse_v1_header(signature)
    assert len(signatures) == 1 and abs(time.time() - timestamp) < 60
    # Our verifier and Stripe's, independently, accept the raw body with the endpoint secret.
    assert verify_v1(request.body, signature, endpoint.secret) == timestamp
    assert stripe.WebhookSignature.verify_header(
        request.body.decode("utf-8"), signature, endpoint.secret, tolerance=300
    )
    tampered = request.body.replace(b"job_7", b"job_8")
    with pytest.raises(SignatureVerificationError):
        verify_v1(tampered, signature, endpoint.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            tampered.decode("utf-8"), signature, endpoint.secret, tolerance=300
        )
    with pytest.raises(SignatureVerificationError):
        verify_v1(request.body, signature, endpoint.secret, now=timestamp + 301)
    with pytest.raises(SignatureVerificationError):
        verify_v1(request.body, signature, "whsec_someone-elses-secret")
    monkeypatch.setattr(stripe._webhook.time, "time", lambda: timestamp + 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            request.body.decode("utf-8"), signature, endpoint.secret, tolerance=300
        )
    monkeypatch.undo()

    [delivery] = await delivered(db_pool, event.id)
    assert delivery["status"] == "SUCCEEDED"
    assert delivery["id"] == envelope["id"]  # attempt 1 carries the delivery's own id
    assert delivery["attempt_count"] == 1
    [attempt] = await attempts_of(db_pool, delivery["id"])
    assert attempt["id"] == envelope["id"]
    assert attempt["attempt_number"] == 1
    assert attempt["succeeded"] is True
    assert attempt["http_status"] == 200
    assert attempt["response_excerpt"] == "ok"
    assert attempt["error"] is None
    assert attempt["duration_ms"] >= 0


async def test_rotation_window_signs_with_both_secrets(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    in_window = await make_endpoint(
        db_pool,
        org.organizationId,
        receiver.script("/rot-window", [200]),
        previous_secret="whsec_old-secret-still-valid",
        previous_secret_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    expired = await make_endpoint(
        db_pool,
        org.organizationId,
        receiver.script("/rot-expired", [200]),
        previous_secret="whsec_old-secret-expired",
        previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    await pipeline.publish(event_message(org.organizationId))

    [during] = await receiver.wait_for("/rot-window", 1)
    header = during.headers["X-Webhook-Signature"]
    assert len(parse_v1_header(header)[1]) == 2
    verify_v1(during.body, header, in_window.secret)
    verify_v1(during.body, header, "whsec_old-secret-still-valid")

    [after] = await receiver.wait_for("/rot-expired", 1)
    header = after.headers["X-Webhook-Signature"]
    assert len(parse_v1_header(header)[1]) == 1
    verify_v1(after.body, header, expired.secret)
    with pytest.raises(SignatureVerificationError):
        verify_v1(after.body, header, "whsec_old-secret-expired")


async def test_duplicate_event_message_creates_one_delivery_and_one_post(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    event = await event_to(make_org, db_pool, receiver.script("/dup", [200]))
    await pipeline.publish(event)
    await pipeline.publish(event)

    await receiver.wait_for("/dup", 1)
    [delivery] = await delivered(db_pool, event.id)
    await asyncio.sleep(1.5)  # time for a second POST, if one were coming
    assert len(receiver.on("/dup")) == 1
    assert len(await deliveries_of(db_pool, event.id)) == 1
    assert len(await attempts_of(db_pool, delivery["id"])) == 1


async def test_fan_out_plan_gate_inactive_and_other_orgs(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    pro, other, free = await make_org(Plan.PRO), await make_org(Plan.PRO), await make_org()
    completed = ["mapping.completed"]
    first = await make_endpoint(
        db_pool, pro.organizationId, receiver.script("/fan-1", [200]), completed
    )
    second = await make_endpoint(
        db_pool,
        pro.organizationId,
        receiver.script("/fan-2", [200]),
        ["mapping.failed", "mapping.completed"],
    )
    # INACTIVE (switched off by its user): kept as a PARKED delivery, never sent
    inactive = await make_endpoint(
        db_pool,
        pro.organizationId,
        receiver.script("/fan-inactive", [200]),
        completed,
        status=EndpointStatus.INACTIVE,
    )
    await make_endpoint(
        db_pool, pro.organizationId, receiver.script("/fan-other-type", [200]), ["mapping.failed"]
    )
    await make_endpoint(
        db_pool, other.organizationId, receiver.script("/fan-other-org", [200]), completed
    )
    # A FREE org's endpoint that (somehow) holds a PRO-only event: the dispatcher gates it.
    await make_endpoint(
        db_pool,
        free.organizationId,
        receiver.script("/fan-free", [200]),
        ["mapping.error.resolved", "mapping.completed"],
    )

    fan_event = event_message(pro.organizationId)
    gated_event = event_message(free.organizationId, "mapping.error.resolved")
    await pipeline.publish(fan_event)
    await pipeline.publish(gated_event)

    rows = await delivered(db_pool, fan_event.id, 3)
    by_endpoint = {r["endpoint_id"]: r["status"] for r in rows}
    assert by_endpoint == {first.id: "SUCCEEDED", second.id: "SUCCEEDED", inactive.id: "PARKED"}
    await receiver.wait_for("/fan-1", 1)
    await receiver.wait_for("/fan-2", 1)
    await dispatched(db_pool, gated_event.id)
    assert await deliveries_of(db_pool, gated_event.id) == []

    # The FREE org's endpoint works for what its plan allows (so the gate, not a fault, held).
    allowed_event = event_message(free.organizationId, "mapping.completed")
    await pipeline.publish(allowed_event)
    [request] = await receiver.wait_for("/fan-free", 1)
    assert request.json()["eventId"] == allowed_event.id

    await asyncio.sleep(0.5)
    for path in ("/fan-inactive", "/fan-other-type", "/fan-other-org"):
        assert receiver.on(path) == [], path
    assert len(receiver.on("/fan-free")) == 1
    assert len(receiver.on("/fan-1")) == 1 and len(receiver.on("/fan-2")) == 1


async def test_envelope_over_64_kib_is_sent_as_a_data_reference(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/big", [200]))
    big = event_message(org.organizationId, data={"rows": "x" * (65 * 1024)})
    small = event_message(org.organizationId, data={"rows": "x" * (60 * 1024)})
    await pipeline.publish(big)
    await pipeline.publish(small)

    requests = await receiver.wait_for("/big", 2)
    by_event = {r.json()["eventId"]: r for r in requests}
    assert by_event[big.id].json()["data"] == {
        "truncated": True,
        "dataRef": f"/api/v1/events/{big.id}",
    }
    assert len(by_event[big.id].body) < 1024
    assert by_event[small.id].json()["data"] == small.data  # under the cap: sent whole
    # The full data stays retrievable behind the reference.
    stored = await db_pool.fetchval("SELECT data FROM events WHERE id = $1", big.id)
    assert stored == big.data


async def test_webhook_test_event_creates_exactly_the_target_delivery(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    org = await make_org()
    # Inactive and not subscribed to anything webhook.test: a /test call still reaches it.
    target = await make_endpoint(
        db_pool,
        org.organizationId,
        receiver.script("/target", [200]),
        status=EndpointStatus.INACTIVE,
    )
    await make_endpoint(
        db_pool,
        org.organizationId,
        receiver.script("/bystander", [200]),
    )
    delivery_id = new_id(IdPrefix.DELIVERY)
    event = event_message(
        org.organizationId,
        "webhook.test",
        {"message": "hello"},
        target_endpoint_id=target.id,
        target_delivery_id=delivery_id,
    )
    await insert_event(db_pool, event)  # the API stores it before publishing
    await pipeline.publish(event)

    [request] = await receiver.wait_for("/target", 1)
    assert request.headers["X-Webhook-Delivery"] == delivery_id
    assert request.headers["X-Webhook-Event"] == "webhook.test"
    assert request.json()["id"] == delivery_id
    [delivery] = await delivered(db_pool, event.id)
    assert delivery["id"] == delivery_id
    assert delivery["endpoint_id"] == target.id
    assert delivery["status"] == "SUCCEEDED"
    await asyncio.sleep(0.3)
    assert receiver.on("/bystander") == []


async def test_redirect_is_a_failure_and_is_not_followed(
    pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver, forget_orgs
) -> None:
    org = await make_org()
    forget_orgs(org.organizationId)
    moved = receiver.behave("/moved", Redirect(302, receiver.url("/landing")))
    await make_endpoint(db_pool, org.organizationId, moved)
    event = event_message(org.organizationId)
    await pipeline.publish(event)
    await receiver.wait_for("/moved", 1)
    [delivery] = await deliveries_when(
        db_pool, event.id, lambda rows: bool(rows) and rows[0]["attempt_count"] >= 1
    )
    [attempt, *_] = await attempts_of(db_pool, delivery["id"])
    assert attempt["succeeded"] is False
    assert attempt["http_status"] == 302
    assert "redirect" in attempt["error"]
    assert delivery["status"] == "PENDING"  # retried later, like any failure
    assert delivery["next_attempt_at"] is not None
    await asyncio.sleep(0.3)
    assert receiver.on("/landing") == []


async def test_two_sender_replicas_share_the_work(
    sender_queue_pipeline: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    pipeline = sender_queue_pipeline
    org = await make_org()
    await make_endpoint(
        db_pool,
        org.organizationId,
        receiver.script("/shared", [200], delay_s=0.2),
    )
    name, labels = "hookpost_delivery_attempts_total", 'outcome="2xx",service="sender"'  # sorted
    before = [metric_value(s, name, labels) for s in pipeline.stack.senders]
    events = [event_message(org.organizationId) for _ in range(20)]
    started = time.monotonic()
    await asyncio.gather(*(pipeline.publish(e) for e in events))

    await receiver.wait_for("/shared", 20)
    elapsed = time.monotonic() - started
    for event in events:
        assert (await delivered(db_pool, event.id))[0]["status"] == "SUCCEEDED"
    after = [metric_value(s, name, labels) for s in pipeline.stack.senders]
    shares = [a - b for a, b in zip(after, before, strict=True)]
    # (more than 20 only if a replica had to re-send: at-least-once under Postgres pressure)
    assert sum(shares) >= 20
    assert all(share >= 3 for share in shares), shares
    # 20 × 200 ms one after the other would take 4 s: they ran concurrently.
    assert elapsed < 3.0
    ids = {r.json()["eventId"] for r in receiver.on("/shared")}
    assert ids == {e.id for e in events}


async def test_event_of_unknown_organization_is_kept_as_poison_not_looped(
    pipeline: Pipeline, db_pool: asyncpg.Pool
) -> None:
    event = event_message("org_does_not_exist")
    await pipeline.publish(event)
    dead_events = pipeline.topology.dead_events_queue.name
    [kept] = await eventually(
        lambda: db_pool.fetch("SELECT * FROM poison_messages WHERE message_id = $1", event.id),
        lambda rows: len(rows) == 1,
    )
    assert (kept["queue"], kept["reason"]) == (dead_events, "rejected")
    assert await db_pool.fetchval("SELECT count(*) FROM events WHERE id = $1", event.id) == 0
    assert await pipeline.queue_depth(pipeline.topology.dispatcher_queue.name) == 0
    assert await pipeline.queue_depth(dead_events) == 0


def _json(body: bytes) -> dict:
    return orjson.loads(body)
