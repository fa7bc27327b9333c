"""Delivery history on a subscription (its order, fields and limits; what every webhook door
shares is in test_webhook_doors.py), and the manual retry of a DEAD delivery."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import orjson
import pytest

from libs.domain.envelope import event_data_ref
from libs.domain.plans import Plan
from libs.infra.broker.messages import ATTEMPT_HEADER, SCHEDULE_START_HEADER
from libs.infra.broker.topology import SEND_ROUTING_KEY
from libs.infra.settings import Settings
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import (
    UNREACHABLE_AMQP_URL,
    Client,
    MakeClient,
    assert_error,
    insert_delivery,
    running_api,
    subscription_body,
)
from tests.api.doors import SUBSCRIPTIONS

SUBS = SUBSCRIPTIONS.path


async def new_subscription(client: Client) -> str:
    return str((await SUBSCRIPTIONS.create(client))["id"])


async def test_deliveries_newest_first_with_their_attempts(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    sub_id = await new_subscription(client)
    older_event, older = await insert_delivery(
        db_pool,
        client.org_id,
        sub_id,
        status="DEAD",
        attempt_count=2,
        attempts=[(500, None, False), (None, "connection refused", False)],
    )
    _, newer = await insert_delivery(
        db_pool,
        client.org_id,
        sub_id,
        status="SUCCEEDED",
        attempt_count=1,
        event_type="export.ready",
        attempts=[(200, None, True)],
    )
    response = await client.get(f"{SUBS}/{sub_id}/deliveries")
    assert response.status_code == 200, response.text
    deliveries = response.json()["deliveries"]
    assert [d["id"] for d in deliveries] == [newer, older]
    first, second = deliveries
    assert set(first) == {
        "id",
        "eventId",
        "eventType",
        "status",
        "attemptCount",
        "createdAt",
        "updatedAt",
        "lastAttemptAt",
        "nextAttemptAt",
        "attempts",
    }
    assert first["eventType"] == "export.ready" and first["status"] == "SUCCEEDED"
    assert second["eventId"] == older_event and second["attemptCount"] == 2
    assert [a["attemptNumber"] for a in second["attempts"]] == [1, 2]
    assert second["attempts"][0]["httpStatus"] == 500
    assert second["attempts"][1]["error"] == "connection refused"
    assert second["attempts"][1]["httpStatus"] is None
    assert set(second["attempts"][0]) == {
        "id",
        "attemptNumber",
        "attemptedAt",
        "httpStatus",
        "error",
        "durationMs",
        "succeeded",
    }
    assert first["attempts"][0]["succeeded"] is True

    limited = (await client.get(f"{SUBS}/{sub_id}/deliveries?limit=1")).json()["deliveries"]
    assert [d["id"] for d in limited] == [newer]


async def test_deliveries_limit_defaults_to_50_and_is_capped_at_200(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    sub_id = await new_subscription(client)
    await db_pool.execute(
        "WITH e AS (INSERT INTO events (id, organization_id, type, data)"
        " SELECT 'evt_bulk_' || $2 || '_' || n, $1, 'mapping.completed', '{}'::jsonb"
        " FROM generate_series(1, 205) n RETURNING id)"
        " INSERT INTO deliveries (id, event_id, endpoint_id, organization_id)"
        " SELECT 'del_' || substr(id, 5), id, $2, $1 FROM e",
        client.org_id,
        sub_id,
    )
    default = (await client.get(f"{SUBS}/{sub_id}/deliveries")).json()["deliveries"]
    assert len(default) == 50
    capped = (await client.get(f"{SUBS}/{sub_id}/deliveries?limit=1000")).json()["deliveries"]
    assert len(capped) == 200


@pytest.mark.parametrize("status", ["DEAD", "FAILED"])
async def test_retry_of_a_dead_delivery_publishes_a_task_with_a_new_schedule(
    client: Client, db_pool: asyncpg.Pool, amqp, topology, status: str
) -> None:
    sub_id = await new_subscription(client)
    event_id, delivery_id = await insert_delivery(
        db_pool, client.org_id, sub_id, status=status, attempt_count=4, data={"rows": 3}
    )
    probe = await bind_probe_queue(amqp, topology.deliveries_exchange.name, SEND_ROUTING_KEY)

    response = await client.post(f"/api/v1/deliveries/{delivery_id}/retry")
    assert response.status_code == 202, response.text
    assert response.json() == {"deliveryId": delivery_id, "status": "PENDING"}

    row = await db_pool.fetchrow("SELECT * FROM deliveries WHERE id = $1", delivery_id)
    assert row["status"] == "PENDING"
    assert row["schedule_start"] == 5
    assert row["attempt_count"] == 4  # attempts are the sender's to count

    message = await next_message(probe, lambda m: m.message_id == delivery_id)
    assert message.headers[ATTEMPT_HEADER] == 5
    assert message.headers[SCHEDULE_START_HEADER] == 5
    assert message.delivery_mode == 2  # persistent
    task = orjson.loads(message.body)
    assert task["deliveryId"] == delivery_id
    assert task["eventId"] == event_id
    assert task["endpointId"] == sub_id
    assert task["organizationId"] == client.org_id
    assert task["type"] == "mapping.completed"
    assert task["data"] == {"rows": 3}

    # Now PENDING: a second retry is a conflict.
    assert_error(await client.post(f"/api/v1/deliveries/{delivery_id}/retry"), 409, "CONFLICT")


@pytest.mark.parametrize("status", ["PENDING", "SUCCEEDED"])
async def test_retry_of_a_live_or_succeeded_delivery_is_a_conflict(
    client: Client, db_pool: asyncpg.Pool, status: str
) -> None:
    sub_id = await new_subscription(client)
    _, delivery_id = await insert_delivery(db_pool, client.org_id, sub_id, status=status)
    error = assert_error(
        await client.post(f"/api/v1/deliveries/{delivery_id}/retry"), 409, "CONFLICT"
    )
    assert status in error["message"]
    row = await db_pool.fetchrow("SELECT status FROM deliveries WHERE id = $1", delivery_id)
    assert row["status"] == status


async def test_retry_of_another_orgs_delivery_is_not_found(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    owner, stranger = await make_client(Plan.FREE), await make_client(Plan.FREE)
    sub_id = await new_subscription(owner)
    _, delivery_id = await insert_delivery(db_pool, owner.org_id, sub_id)
    assert_error(await stranger.post(f"/api/v1/deliveries/{delivery_id}/retry"), 404, "NOT_FOUND")
    assert_error(await owner.post("/api/v1/deliveries/del_nope/retry"), 404, "NOT_FOUND")
    row = await db_pool.fetchrow("SELECT status FROM deliveries WHERE id = $1", delivery_id)
    assert row["status"] == "DEAD"


async def test_retry_caps_a_large_payload_to_a_data_ref(
    client: Client, db_pool: asyncpg.Pool, amqp, topology, settings: Settings
) -> None:
    sub_id = await new_subscription(client)
    big = {"blob": "x" * (settings.payload_cap_bytes + 10)}
    event_id, delivery_id = await insert_delivery(db_pool, client.org_id, sub_id, data=big)
    probe = await bind_probe_queue(amqp, topology.deliveries_exchange.name, SEND_ROUTING_KEY)
    assert (await client.post(f"/api/v1/deliveries/{delivery_id}/retry")).status_code == 202
    message = await next_message(probe, lambda m: m.message_id == delivery_id)
    assert orjson.loads(message.body)["data"] == {
        "truncated": True,
        "dataRef": event_data_ref(event_id),
    }


async def test_retry_while_the_broker_is_down_is_503_and_changes_nothing(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool
) -> None:
    org = await make_org()
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    down = settings.model_copy(update={"amqp_url": UNREACHABLE_AMQP_URL})
    async with running_api(down) as http:
        created = await http.post(SUBS, headers=headers, json=subscription_body())
        sub_id = created.json()["id"]
        _, delivery_id = await insert_delivery(db_pool, org.organizationId, sub_id)
        response = await http.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=headers)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
    row = await db_pool.fetchrow(
        "SELECT status, schedule_start FROM deliveries WHERE id = $1", delivery_id
    )
    assert (row["status"], row["schedule_start"]) == ("DEAD", 1)
