"""`orderingKey` on POST /api/v1/events: validated (the §4 error body), stored with the event,
carried by its message, and part of the request an Idempotency-Key stands for."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from libs.infra.broker.messages import EventMessage
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import Client, assert_error

EVENTS = "/api/v1/events"


async def test_the_key_is_stored_and_published(
    client: Client, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "export.ready")
    key = "customer-42/" + "é" * 100  # 112 characters, not all ASCII
    response = await client.post(EVENTS, json={"type": "export.ready", "orderingKey": key})
    assert response.status_code == 202, response.text
    event_id = response.json()["eventId"]
    stored = await db_pool.fetchval("SELECT ordering_key FROM events WHERE id = $1", event_id)
    assert stored == key
    message = await next_message(probe, lambda m: m.message_id == event_id)
    assert EventMessage.model_validate(orjson.loads(message.body)).ordering_key == key


async def test_without_a_key_nothing_changes(client: Client, db_pool: asyncpg.Pool) -> None:
    response = await client.post(EVENTS, json={"type": "export.ready", "data": {}})
    event_id = response.json()["eventId"]
    assert await db_pool.fetchval("SELECT ordering_key IS NULL FROM events WHERE id = $1", event_id)


@pytest.mark.parametrize(
    "key",
    ["", "k" * 129, 42, ["a"], {"a": 1}, "nul\u0000inside"],
    ids=["empty", "too-long", "number", "list", "object", "nul"],
)
async def test_a_bad_key_is_a_shaped_400(client: Client, key: object) -> None:
    response = await client.post(EVENTS, json={"type": "export.ready", "orderingKey": key})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert "orderingKey" in response.text, body


async def test_an_idempotency_key_covers_the_ordering_key(client: Client) -> None:
    headers = {"Idempotency-Key": "ordering-idem"}
    body = {"type": "export.ready", "data": {}, "orderingKey": "a"}
    first = await client.post(EVENTS, json=body, headers=headers)
    again = await client.post(EVENTS, json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other = await client.post(EVENTS, json={**body, "orderingKey": "b"}, headers=headers)
    assert_error(other, 409, "CONFLICT")
