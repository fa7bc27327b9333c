"""Event ingest, idempotency, and the outbox: stored first, published with confirms, relayed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import orjson

from libs.domain.plans import Plan
from libs.infra.broker.messages import EventMessage
from libs.infra.settings import Settings
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import (
    UNREACHABLE_AMQP_URL,
    Client,
    MakeClient,
    assert_error,
    running_api,
    wait_until,
)

EVENTS = "/api/v1/events"


async def test_ingest_then_read_back(client: Client) -> None:
    data = {"mappingJobId": "job_42", "stats": {"rows": 3}, "tags": ["a", None, 1.5]}
    response = await client.post(EVENTS, json={"type": "mapping.completed", "data": data})
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"eventId"}
    event_id = response.json()["eventId"]
    assert event_id.startswith("evt_")

    shown = await client.get(f"{EVENTS}/{event_id}")
    assert shown.status_code == 200
    body = shown.json()
    assert set(body) == {"id", "type", "data", "createdAt"}
    assert (body["id"], body["type"], body["data"]) == (event_id, "mapping.completed", data)


async def test_events_are_scoped_to_their_org(make_client: MakeClient) -> None:
    owner, stranger = await make_client(Plan.FREE), await make_client(Plan.FREE)
    event_id = (await owner.post(EVENTS, json={"type": "export.ready", "data": {}})).json()[
        "eventId"
    ]
    assert_error(await stranger.get(f"{EVENTS}/{event_id}"), 404, "NOT_FOUND")
    assert_error(await owner.get(f"{EVENTS}/evt_missing"), 404, "NOT_FOUND")


async def test_idempotency_key_returns_the_same_event(
    client: Client, db_pool: asyncpg.Pool, make_client: MakeClient
) -> None:
    body = {"type": "mapping.completed", "data": {"b": 2, "a": 1}}
    headers = {"Idempotency-Key": "order-123"}
    first = await client.post(EVENTS, json=body, headers=headers)
    # The same request with keys in another order is still the same request.
    again = await client.post(
        EVENTS, json={"data": {"a": 1, "b": 2}, "type": "mapping.completed"}, headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["eventId"] == again.json()["eventId"]
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", client.org_id
    )
    assert count == 1

    different = await client.post(
        EVENTS, json={"type": "mapping.completed", "data": {"a": 2}}, headers=headers
    )
    error = assert_error(different, 409, "CONFLICT")
    assert error["eventId"] == first.json()["eventId"]
    other_type = await client.post(
        EVENTS, json={"type": "mapping.failed", "data": body["data"]}, headers=headers
    )
    assert_error(other_type, 409, "CONFLICT")

    # Keys belong to one org: another org may use the same key for its own event.
    other = await make_client(Plan.FREE)
    theirs = await other.post(EVENTS, json=body, headers=headers)
    assert theirs.status_code == 202
    assert theirs.json()["eventId"] != first.json()["eventId"]

    # Without a key, every request is a new event.
    a = await client.post(EVENTS, json=body)
    b = await client.post(EVENTS, json=body)
    assert a.json()["eventId"] != b.json()["eventId"]


async def test_idempotency_key_length_is_checked(client: Client) -> None:
    response = await client.post(
        EVENTS,
        json={"type": "mapping.completed", "data": {}},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert_error(response, 400, "BAD_REQUEST")


async def test_an_accepted_event_is_published_with_confirms_and_marked(
    client: Client, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "mapping.failed")
    data = {"error": {"code": "E1", "message": "boom"}}
    response = await client.post(EVENTS, json={"type": "mapping.failed", "data": data})
    event_id = response.json()["eventId"]

    message = await next_message(probe, lambda m: m.message_id == event_id)
    assert message.routing_key == "mapping.failed"
    assert message.delivery_mode == 2  # persistent
    assert message.content_type == "application/json"
    sent = EventMessage.model_validate(orjson.loads(message.body))
    assert (sent.id, sent.organization_id, sent.type, sent.data) == (
        event_id,
        client.org_id,
        "mapping.failed",
        data,
    )
    assert sent.target_endpoint_id is None and sent.target_delivery_id is None

    row = await db_pool.fetchrow("SELECT * FROM events WHERE id = $1", event_id)
    assert row["created_at"] == sent.created_at

    async def marked() -> bool:  # after the confirm, in the background (test_published_marks)
        return await db_pool.fetchval(
            "SELECT published_at IS NOT NULL FROM events WHERE id = $1", event_id
        )

    await wait_until(marked)


async def test_broker_down_still_accepts_and_the_relay_publishes_later(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    org = await make_org()
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    down = settings.model_copy(update={"amqp_url": UNREACHABLE_AMQP_URL})
    async with running_api(down) as http:
        started = time.monotonic()
        response = await http.post(
            EVENTS, headers=headers, json={"type": "export.ready", "data": {"via": "outbox"}}
        )
        assert response.status_code == 202, response.text
        assert time.monotonic() - started < 3.0  # the API does not hang on the broker
        event_id = response.json()["eventId"]
        # This api's relay runs too (and fails quietly): give it a few rounds past the grace.
        time_to_wait = settings.outbox_relay_grace_s + 3 * settings.outbox_relay_interval_s
        await asyncio.sleep(time_to_wait)
        row = await db_pool.fetchrow("SELECT published_at FROM events WHERE id = $1", event_id)
        assert row["published_at"] is None
        # Stored before the answer: readable even though it never reached the broker.
        shown = await http.get(f"{EVENTS}/{event_id}", headers=headers)
        assert shown.json()["data"] == {"via": "outbox"}

    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "export.ready")
    async with running_api(settings):
        message = await next_message(probe, lambda m: m.message_id == event_id, timeout=15)
        assert orjson.loads(message.body)["data"] == {"via": "outbox"}

        async def marked() -> bool:
            row = await db_pool.fetchrow("SELECT published_at FROM events WHERE id = $1", event_id)
            return row["published_at"] is not None

        await wait_until(marked)


async def test_concurrent_requests_with_one_key_make_one_event(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    body = {"type": "mapping.completed", "data": {"n": 1}}
    headers = {"Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post(EVENTS, json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["eventId"] for r in responses}) == 1
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", client.org_id
    )
    assert count == 1
