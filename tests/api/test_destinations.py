"""The delivery-destinations door (seed 001): CRUD, dotted events, plan gates, shared quota,
tenancy, URL safety, the grace-window rotate-secret, /test, deliveries, signatureScheme."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from libs.domain.plans import Plan
from libs.infra import crypto
from tests.api.conftest import (
    Client,
    MakeClient,
    assert_error,
    insert_delivery,
    subscription_body,
)

DESTS = "/api/v1/delivery-destinations"
SUBS = "/api/v1/webhook-subscriptions"
RESPONSE_FIELDS = {
    "id",
    "type",
    "organizationId",
    "name",
    "webhookUrl",
    "events",
    "apiKeyName",
    "apiKeyValueMasked",
    "additionalHeaders",
    "status",
    "deactivatedReason",
    "signatureScheme",
    "signingSecretMasked",
    "createdAt",
    "updatedAt",
}


def destination_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "WEBHOOK",
        "name": "Production webhook",
        "webhookUrl": "https://localhost/hooks/mapping",
        "events": ["mapping.completed"],
        "status": "ACTIVE",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def create(client: Client, **overrides: Any) -> dict:
    response = await client.post(DESTS, json=destination_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_every_field_and_the_secret_once(client: Client) -> None:
    created = await create(
        client,
        apiKeyName="X-API-Key",
        apiKeyValue="key-value-123456789",
        additionalHeaders={"X-Team": "ops"},
        events=["mapping.completed", "export.ready"],
    )
    assert set(created) == RESPONSE_FIELDS | {"signingSecret"}
    assert created["id"].startswith("dest_") and len(created["id"]) == len("dest_") + 26
    assert created["type"] == "WEBHOOK"
    assert created["organizationId"] == client.org_id
    assert created["events"] == ["mapping.completed", "export.ready"]
    assert created["status"] == "ACTIVE" and created["deactivatedReason"] is None
    assert created["signatureScheme"] == "v1"
    assert created["apiKeyValueMasked"] == "••••6789"
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    assert created["signingSecretMasked"] == f"whsec_••••{secret[-4:]}"

    fetched = (await client.get(f"{DESTS}/{created['id']}")).json()
    listed = (await client.get(DESTS)).json()
    assert set(listed) == {"destinations"}
    for shown in (fetched, *listed["destinations"]):
        assert set(shown) == RESPONSE_FIELDS
    assert secret not in str(fetched) and secret not in str(listed)
    # One endpoints table, separate doors: a destination is not a subscription.
    assert (await client.get(SUBS)).json() == {"subscriptions": []}
    assert_error(await client.get(f"{SUBS}/{created['id']}"), 404, "NOT_FOUND")


async def test_subscription_ids_are_not_found_here(client: Client) -> None:
    sub = await client.post(SUBS, json=subscription_body())
    assert sub.status_code == 201
    assert_error(await client.get(f"{DESTS}/{sub.json()['id']}"), 404, "NOT_FOUND")
    assert (await client.get(DESTS)).json() == {"destinations": []}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"type": ...}, "type"),
        ({"type": "EMAIL"}, "type"),
        ({"events": []}, "at least one"),
        ({"events": ["MAPPING_COMPLETED"]}, "MAPPING_COMPLETED"),  # this door speaks dotted
        ({"events": ["webhook.test"]}, "webhook.test"),
        ({"webhookUrl": "ftp://localhost/x"}, ""),
        ({"signatureScheme": "hmac-md5"}, "signatureScheme"),
        ({"additionalHeaders": {"X-Webhook-Signature": "x"}}, "X-Webhook-Signature"),
        ({"additionalHeaders": {"webhook-signature": "x"}}, "webhook-signature"),
    ],
)
async def test_invalid_bodies_are_400(client: Client, overrides: dict, fragment: str) -> None:
    response = await client.post(DESTS, json=destination_body(**overrides))
    error = assert_error(response, 400, "BAD_REQUEST")
    assert fragment in error["message"]
    assert (await client.get(DESTS)).json() == {"destinations": []}


async def test_unauthenticated_is_401(client: Client) -> None:
    response = await client.http.get(DESTS)
    assert_error(response, 401, "UNAUTHORIZED")
    response = await client.http.post(DESTS, json=destination_body())
    assert_error(response, 401, "UNAUTHORIZED")


async def test_plan_gate_names_the_offending_dotted_events(
    client: Client, pro_client: Client
) -> None:
    events = ["mapping.completed", "mapping.error.resolved", "inventory.duplicate.resolved"]
    error = assert_error(
        await client.post(DESTS, json=destination_body(events=events)), 403, "FORBIDDEN"
    )
    assert error["events"] == ["mapping.error.resolved", "inventory.duplicate.resolved"]
    assert (await client.get(DESTS)).json() == {"destinations": []}

    created = await create(client)
    put = await client.put(
        f"{DESTS}/{created['id']}", json=destination_body(events=["mapping.error.resolved"])
    )
    assert assert_error(put, 403, "FORBIDDEN")["events"] == ["mapping.error.resolved"]
    assert (await client.get(f"{DESTS}/{created['id']}")).json()["events"] == ["mapping.completed"]
    assert (await pro_client.post(DESTS, json=destination_body(events=events))).status_code == 201


async def test_active_only_put_and_delete(client: Client, db_pool: asyncpg.Pool) -> None:
    active = await create(client, apiKeyName="X-Key", apiKeyValue="old-value")
    inactive = await create(client, status="INACTIVE")
    listed = (await client.get(DESTS)).json()["destinations"]
    assert [d["id"] for d in listed] == [active["id"], inactive["id"]]
    only_active = (await client.get(f"{DESTS}?activeOnly=true")).json()["destinations"]
    assert [d["id"] for d in only_active] == [active["id"]]

    body = destination_body(
        name="Renamed",
        webhookUrl="https://localhost/other",
        events=["mapping.failed"],
        status="INACTIVE",
        signatureScheme="standard-webhooks",
    )
    response = await client.put(f"{DESTS}/{active['id']}", json=body)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert set(replaced) == RESPONSE_FIELDS
    assert replaced["name"] == "Renamed"
    assert replaced["webhookUrl"] == "https://localhost/other"
    assert replaced["events"] == ["mapping.failed"]
    assert replaced["status"] == "INACTIVE"
    assert replaced["signatureScheme"] == "standard-webhooks"
    assert replaced["apiKeyName"] is None  # replace, not patch
    assert replaced["signingSecretMasked"] == active["signingSecretMasked"]
    assert (await client.get(f"{DESTS}/{active['id']}")).json() == replaced

    _, delivery_id = await insert_delivery(db_pool, client.org_id, active["id"])
    response = await client.delete(f"{DESTS}/{active['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_error(await client.get(f"{DESTS}/{active['id']}"), 404, "NOT_FOUND")
    assert_error(await client.delete(f"{DESTS}/{active['id']}"), 404, "NOT_FOUND")
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE id = $1", delivery_id) == 0


@pytest.mark.parametrize(
    ("method", "suffix", "send_body"),
    [
        ("GET", "", False),
        ("PUT", "", True),
        ("DELETE", "", False),
        ("POST", "/rotate-secret", False),
        ("GET", "/deliveries", False),
        ("POST", "/test", False),
    ],
)
async def test_another_orgs_destination_is_not_found(
    make_client: MakeClient, method: str, suffix: str, send_body: bool, db_pool: asyncpg.Pool
) -> None:
    owner = await make_client(Plan.FREE)
    stranger = await make_client(Plan.ENTERPRISE)
    created = await create(owner)
    before = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"])
    kwargs = {"json": destination_body(name="hijacked")} if send_body else {}
    response = await stranger.http.request(
        method,
        f"{DESTS}/{created['id']}{suffix}",
        headers={"Authorization": f"Bearer {stranger.token}"},
        **kwargs,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"]) == before
    assert (await stranger.get(DESTS)).json() == {"destinations": []}
    missing = await owner.http.request(
        method,
        f"{DESTS}/dest_00000000000000000000000000{suffix}",
        headers={"Authorization": f"Bearer {owner.token}"},
        **kwargs,
    )
    assert_error(missing, 404, "NOT_FOUND")


async def test_quota_is_shared_with_subscriptions(client: Client) -> None:
    for _ in range(5):
        assert (await client.post(SUBS, json=subscription_body())).status_code == 201
    for _ in range(5):
        await create(client)
    inactive = await create(client, status="INACTIVE")  # INACTIVE never counts
    assert (
        "quota"
        in assert_error(await client.post(DESTS, json=destination_body()), 400, "BAD_REQUEST")[
            "message"
        ]
    )
    assert (
        "quota"
        in assert_error(await client.post(SUBS, json=subscription_body()), 400, "BAD_REQUEST")[
            "message"
        ]
    )
    reactivate = await client.put(f"{DESTS}/{inactive['id']}", json=destination_body())
    assert "quota" in assert_error(reactivate, 400, "BAD_REQUEST")["message"]
    # Freeing a subscription makes room for a destination.
    first_sub = (await client.get(SUBS)).json()["subscriptions"][0]
    assert (await client.delete(f"{SUBS}/{first_sub['id']}")).status_code == 204
    assert (
        await client.put(f"{DESTS}/{inactive['id']}", json=destination_body())
    ).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_url_safety_outside_dev(prod_client: Client, url: str) -> None:
    assert_error(
        await prod_client.post(DESTS, json=destination_body(webhookUrl=url)), 400, "BAD_REQUEST"
    )
    assert (await prod_client.get(DESTS)).json() == {"destinations": []}


async def _secrets_row(db_pool: asyncpg.Pool, endpoint_id: str) -> asyncpg.Record:
    return await db_pool.fetchrow(
        "SELECT secret_enc, previous_secret_enc, previous_secret_expires_at, now() AS db_now"
        " FROM endpoints WHERE id = $1",
        endpoint_id,
    )


async def test_rotate_secret_keeps_the_old_one_for_the_default_grace_window(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
    response = await client.post(f"{DESTS}/{created['id']}/rotate-secret")  # no body at all
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {"id", "signingSecret", "previousSecretExpiresAt"}
    assert rotated["id"] == created["id"]
    new_secret = rotated["signingSecret"]
    assert new_secret.startswith("whsec_") and new_secret != created["signingSecret"]
    expires = datetime.fromisoformat(rotated["previousSecretExpiresAt"].replace("Z", "+00:00"))
    row = await _secrets_row(db_pool, created["id"])
    assert crypto.decrypt(row["secret_enc"]) == new_secret
    assert crypto.decrypt(row["previous_secret_enc"]) == created["signingSecret"]
    assert row["previous_secret_expires_at"] == expires
    assert timedelta(seconds=295) < expires - row["db_now"] <= timedelta(seconds=300)
    shown = (await client.get(f"{DESTS}/{created['id']}")).json()
    assert shown["signingSecretMasked"] == f"whsec_••••{new_secret[-4:]}"


@pytest.mark.parametrize(
    ("body", "seconds"),
    [({}, 300), ({"gracePeriodSeconds": 86400}, 86400), ({"gracePeriodSeconds": 7}, 7)],
)
async def test_rotate_secret_grace_period_is_settable(
    client: Client, db_pool: asyncpg.Pool, body: dict, seconds: int
) -> None:
    created = await create(client)
    response = await client.post(f"{DESTS}/{created['id']}/rotate-secret", json=body)
    assert response.status_code == 200, response.text
    row = await _secrets_row(db_pool, created["id"])
    left = (row["previous_secret_expires_at"] - row["db_now"]).total_seconds()
    assert seconds - 5 < left <= seconds


async def test_rotate_secret_with_zero_grace_drops_the_old_one_at_once(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
    response = await client.post(
        f"{DESTS}/{created['id']}/rotate-secret", json={"gracePeriodSeconds": 0}
    )
    assert response.status_code == 200, response.text
    assert response.json()["previousSecretExpiresAt"] is None
    row = await _secrets_row(db_pool, created["id"])
    assert row["previous_secret_enc"] is None and row["previous_secret_expires_at"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"gracePeriodSeconds": -1},
        {"gracePeriodSeconds": 86401},
        {"gracePeriodSeconds": "soon"},
        [1],
    ],
)
async def test_rotate_secret_refuses_a_bad_grace_period(
    client: Client, db_pool: asyncpg.Pool, body: object
) -> None:
    created = await create(client)
    before = await _secrets_row(db_pool, created["id"])
    response = await client.post(f"{DESTS}/{created['id']}/rotate-secret", json=body)
    assert_error(response, 400, "BAD_REQUEST")
    after = await _secrets_row(db_pool, created["id"])
    assert after["secret_enc"] == before["secret_enc"]


async def test_subscription_rotation_stays_immediate(client: Client, db_pool: asyncpg.Pool) -> None:
    sub = (await client.post(SUBS, json=subscription_body())).json()
    response = await client.post(
        f"{SUBS}/{sub['id']}/rotate-secret", json={"gracePeriodSeconds": 600}
    )
    assert response.status_code == 200
    row = await _secrets_row(db_pool, sub["id"])
    assert row["previous_secret_enc"] is None and row["previous_secret_expires_at"] is None


async def test_test_call_queues_a_webhook_test_for_this_destination(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
    response = await client.post(f"{DESTS}/{created['id']}/test")
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"deliveryId"}
    delivery_id = response.json()["deliveryId"]
    assert delivery_id.startswith("del_")
    event = await db_pool.fetchrow(
        "SELECT * FROM events WHERE target_delivery_id = $1", delivery_id
    )
    assert event["type"] == "webhook.test"
    assert event["organization_id"] == client.org_id
    assert event["target_endpoint_id"] == created["id"]
    assert event["data"] == {
        "message": "This is a test webhook from hookpost",
        "destinationId": created["id"],
    }


async def test_deliveries_lists_this_destinations_history(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
    other = await create(client)
    _, delivery_id = await insert_delivery(
        db_pool,
        client.org_id,
        created["id"],
        attempts=[(500, None, False), (200, None, True)],
        status="SUCCEEDED",
        attempt_count=2,
    )
    await insert_delivery(db_pool, client.org_id, other["id"])
    response = await client.get(f"{DESTS}/{created['id']}/deliveries")
    assert response.status_code == 200, response.text
    [delivery] = response.json()["deliveries"]
    assert delivery["id"] == delivery_id
    assert delivery["status"] == "SUCCEEDED"
    assert [a["httpStatus"] for a in delivery["attempts"]] == [500, 200]
    assert_error(
        await client.get(f"{DESTS}/{created['id']}/deliveries?limit=0"), 400, "BAD_REQUEST"
    )


@pytest.mark.parametrize("door", [DESTS, SUBS])
async def test_signature_scheme_is_stored_per_endpoint(
    client: Client, db_pool: asyncpg.Pool, door: str
) -> None:
    body = destination_body() if door == DESTS else subscription_body()
    default = await client.post(door, json=body)
    chosen = await client.post(door, json={**body, "signatureScheme": "standard-webhooks"})
    assert default.status_code == chosen.status_code == 201, chosen.text
    assert default.json()["signatureScheme"] == "v1"
    assert chosen.json()["signatureScheme"] == "standard-webhooks"
    stored = await db_pool.fetchval(
        "SELECT signature_scheme FROM endpoints WHERE id = $1", chosen.json()["id"]
    )
    assert stored == "standard-webhooks"
    assert (await client.get(f"{door}/{chosen.json()['id']}")).json()["signatureScheme"] == (
        "standard-webhooks"
    )
    bad = await client.post(door, json={**body, "signatureScheme": "v2"})
    assert_error(bad, 400, "BAD_REQUEST")
