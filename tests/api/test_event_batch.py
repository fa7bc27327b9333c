"""POST /api/v1/events/batch: per-item checks, results and idempotency; one INSERT and one
confirmed publish for the batch; whole-request errors stay whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg
import orjson

from libs.domain.plans import Plan
from libs.infra.broker.messages import BATCH_ROUTING_KEY, EventMessage, batch_items, is_batch
from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import Client, assert_error, running_api

BATCH = "/api/v1/events/batch"
EVENTS = "/api/v1/events"


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "mapping.completed", "data": {"mappingJobId": f"job_{n}"}, **extra}


async def test_a_batch_is_one_insert_and_one_message_and_bad_items_fail_alone(
    insert_batches: list[int],  # before the app: its batcher holds the method it was given
    amqp: aio_pika.abc.AbstractChannel,
    topology: Topology,
    client: Client,
    db_pool: asyncpg.Pool,
) -> None:
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "#")
    events = [
        item(0),
        {"type": "no.such.type", "data": {}},  # the single route's 400 (unknown type)
        item(2, orderingKey="line-1"),
        {"data": {}},  # no type: the single route's validation 400
        "not an object",
        item(5, data={"n": 2**70}),  # data jsonb cannot hold: 400
        item(6, idempotencyKey=""),  # a key of 0 characters: 400
        item(7),
    ]
    response = await client.post(BATCH, json={"events": events})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["failed"]) == (3, 5)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(events)))
    assert [r["status"] for r in results] == [202, 400, 202, 400, 400, 400, 400, 202]
    for failed in (results[1], results[3], results[4], results[5], results[6]):
        assert set(failed) == {"index", "status", "error"}
        assert failed["error"]["code"] == "BAD_REQUEST" and failed["error"]["message"]
    assert "unknown event type" in results[1]["error"]["message"]
    assert results[3]["error"]["details"] == [
        {"field": "events[3].type", "message": "Field required"}
    ]
    accepted = [r["eventId"] for r in results if r["status"] == 202]
    assert insert_batches == [3]  # one statement for the batch's accepted events

    rows = await db_pool.fetch(
        "SELECT id, data, ordering_key FROM events WHERE organization_id = $1", client.org_id
    )
    assert sorted(r["id"] for r in rows) == sorted(accepted)
    keys = {r["id"]: r["ordering_key"] for r in rows}
    assert keys[accepted[1]] == "line-1"

    message = await next_message(probe, lambda m: m.routing_key == BATCH_ROUTING_KEY)
    assert is_batch(message.body)
    published = [EventMessage.model_validate(i) for i in batch_items(message.body)]
    assert [e.id for e in published] == accepted  # one message, in the request's order
    assert published[1].ordering_key == "line-1"
    assert {e.organization_id for e in published} == {client.org_id}


async def test_idempotency_keys_per_item_as_the_single_route_keeps_them(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    single = await client.post(EVENTS, json=item(1), headers={"Idempotency-Key": "k-single"})
    assert single.status_code == 202
    events = [
        item(1, idempotencyKey="k-single"),  # the same event as the single request: its id
        item(9, idempotencyKey="k-single"),  # another event under that key: 409
        item(2, idempotencyKey="k-2"),
        item(2, idempotencyKey="k-2"),  # repeated within the batch, same event: same id
        item(3, idempotencyKey="k-2"),  # within the batch, another event: 409
        item(4),
    ]
    first = (await client.post(BATCH, json={"events": events})).json()["results"]
    assert [r["status"] for r in first] == [202, 409, 202, 202, 409, 202]
    assert first[0]["eventId"] == single.json()["eventId"]
    assert first[1]["error"]["code"] == "CONFLICT"
    assert first[1]["error"]["eventId"] == single.json()["eventId"]
    assert first[3]["eventId"] == first[2]["eventId"]
    assert first[4]["error"]["eventId"] == first[2]["eventId"]

    again = (await client.post(BATCH, json={"events": events})).json()["results"]
    assert [r["status"] for r in again] == [202, 409, 202, 202, 409, 202]
    assert again[2]["eventId"] == first[2]["eventId"]
    assert again[5]["eventId"] != first[5]["eventId"]  # no key: a new event each time
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", client.org_id
    )
    assert count == 1 + 2 + 1  # the single one, k-2, and the keyless item twice


async def test_rate_limit_takes_one_token_per_event(settings: Settings, make_org: Callable) -> None:
    limited = settings.model_copy(update={"events_rate_per_s": 0.001, "events_rate_burst": 3})
    org = await make_org(Plan.FREE)
    auth = {"Authorization": f"Bearer {org.apiToken}"}
    async with running_api(limited) as http:
        events = [item(0), {"type": 1}, item(2), item(3), item(4)]
        response = await http.post(BATCH, json={"events": events}, headers=auth)
        single = await http.post(EVENTS, json=item(9), headers=auth)
    results = response.json()["results"]
    # A malformed item spends its token, as a malformed single request does.
    assert [r["status"] for r in results] == [202, 400, 202, 429, 429]
    limited_error = results[3]["error"]
    assert limited_error["code"] == "RATE_LIMITED"
    assert limited_error["retryAfterSeconds"] >= 1
    assert_error(single, 429, "RATE_LIMITED")


async def test_whole_request_errors(client: Client) -> None:
    ok = {"events": [item(0)]}
    no_token = await client.http.post(BATCH, json=ok)
    assert_error(no_token, 401, "UNAUTHORIZED")
    bad_token = await client.http.post(BATCH, json=ok, headers={"Authorization": "Bearer x"})
    assert_error(bad_token, 401, "UNAUTHORIZED")

    too_many = await client.post(BATCH, json={"events": [item(n) for n in range(501)]})
    error = assert_error(too_many, 400, "BAD_REQUEST")
    assert error["details"][0]["field"] == "events"
    assert_error(await client.post(BATCH, json={"events": []}), 400, "BAD_REQUEST")
    assert_error(await client.post(BATCH, json={"events": {}}), 400, "BAD_REQUEST")
    assert_error(await client.post(BATCH, json=[item(0)]), 400, "BAD_REQUEST")
    assert_error(await client.post(BATCH, content=b"{"), 400, "BAD_REQUEST")
    assert_error(await client.post(BATCH), 400, "BAD_REQUEST")
    huge = orjson.dumps({"events": [item(0, data={"pad": "x" * (11 * 1024 * 1024)})]})
    assert_error(await client.post(BATCH, content=huge), 413, "PAYLOAD_TOO_LARGE")


async def test_500_events_over_the_single_body_limit(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool
) -> None:
    unlimited = settings.model_copy(update={"events_rate_per_s": 0})  # 500 > the burst
    org = await make_org(Plan.FREE)
    pad = "y" * 4096
    full = {"events": [item(n, data={"n": n, "pad": pad}) for n in range(500)]}
    assert len(orjson.dumps(full)) > settings.max_body_bytes
    async with running_api(unlimited) as http:
        response = await http.post(
            BATCH, json=full, headers={"Authorization": f"Bearer {org.apiToken}"}
        )
    assert response.status_code == 200, response.text[:500]
    assert response.json()["accepted"] == 500
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", org.organizationId
    )
    assert count == 500
