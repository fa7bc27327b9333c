"""`DELETE /api/v1/admin/organizations/{id}`: one organization's data erased through the api
(real app, PostgreSQL and broker), the other's untouched, the erasure audited."""

from __future__ import annotations

import json

import asyncpg

from harness.waiting import eventually
from tests.api.conftest import (
    Client,
    MakeClient,
    admin_url,
    assert_error,
    insert_delivery,
    subscription_body,
)
from tests.api.doors import SUBSCRIPTIONS
from tests.retention.history import rows_of

SUBS = SUBSCRIPTIONS.path


async def with_history(client: Client, db_pool: asyncpg.Pool) -> None:
    """A subscription, an event taken with an idempotency key, a delivery with attempts."""
    response = await client.post(SUBS, json=subscription_body(events=["MAPPING_COMPLETED"]))
    assert response.status_code == 201, response.text
    endpoint_id = response.json()["id"]
    event = await client.post(
        "/api/v1/events",
        json={"type": "mapping.completed", "data": {"mappingJobId": "job_1"}},
        headers={"Idempotency-Key": "erase-me"},
    )
    assert event.status_code == 202, event.text

    # The api marks the event published just after it answers: wait for that mark, so the
    # snapshot compared after the other org's erasure is not taken halfway through it.
    async def published() -> object:
        return await db_pool.fetchval(
            "SELECT published_at FROM events WHERE id = $1", event.json()["eventId"]
        )

    await eventually(published, lambda at: at is not None, timeout=10.0)
    await insert_delivery(
        db_pool, client.org_id, endpoint_id, attempts=[(500, None, False), (200, None, True)]
    )


async def test_delete_erases_one_org_and_leaves_the_other(
    make_client: MakeClient, db_pool: asyncpg.Pool, admin_auth: dict[str, str]
) -> None:
    gone, kept = await make_client(), await make_client()
    await with_history(gone, db_pool)
    await with_history(kept, db_pool)
    async with db_pool.acquire() as conn:
        assert (await rows_of(conn, gone.org_id))["delivery_attempts"]
        kept_before = await rows_of(conn, kept.org_id)

    response = await gone.http.delete(admin_url(gone.org_id), headers=admin_auth)
    assert response.status_code == 204, response.text

    async with db_pool.acquire() as conn:
        assert {t: r for t, r in (await rows_of(conn, gone.org_id)).items() if r} == {}
        assert await rows_of(conn, kept.org_id) == kept_before
    entry = await db_pool.fetchrow(
        "SELECT details FROM audit_log WHERE action = 'organization.erased'"
        " AND details ->> 'organizationId' = $1",
        gone.org_id,
    )
    details = (
        entry["details"] if isinstance(entry["details"], dict) else json.loads(entry["details"])
    )
    assert details["requestedBy"] == "api" and details["erased"]["events"] >= 2
    # Its token is refused at once on this replica; the other org carries on.
    assert_error(await gone.get(SUBS), 401, "UNAUTHORIZED")
    assert (await kept.get(SUBS)).status_code == 200


async def test_delete_of_an_unknown_org_or_without_the_admin_token_is_shaped(
    client: Client, admin_auth: dict[str, str]
) -> None:
    assert_error(
        await client.http.delete(admin_url("org_nope"), headers=admin_auth),
        404,
        "NOT_FOUND",
    )
    assert_error(await client.delete(admin_url(client.org_id)), 401, "UNAUTHORIZED")
    assert (await client.get(SUBS)).status_code == 200
