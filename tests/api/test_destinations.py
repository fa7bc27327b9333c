"""What is the delivery-destinations door's own (seed 001): `type: WEBHOOK`, dotted event
names, its own quota (not shared with subscriptions), URL safety, the grace-window rotate-secret.
What it does like the webhook-subscriptions door is in test_webhook_doors.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest

from libs.infra import crypto
from libs.infra.settings import Settings
from tests.api.conftest import Client, assert_error, fill_subscription_quota, subscription_body
from tests.api.doors import DESTINATIONS, SUBSCRIPTIONS, destination_body

DESTS = DESTINATIONS.path
SUBS = SUBSCRIPTIONS.path


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


async def test_quota_is_per_door_not_shared_with_subscriptions(
    client: Client, settings: Settings
) -> None:
    """Seed 002's 10 ACTIVE subscriptions count subscriptions only: a full subscription quota
    leaves destinations their own allowance, and the other way round."""
    await fill_subscription_quota(client, settings)
    for _ in range(settings.active_endpoint_quota):
        await DESTINATIONS.create(client)
    inactive = await DESTINATIONS.create(client, status="INACTIVE")  # INACTIVE never counts
    error = assert_error(await client.post(DESTS, json=destination_body()), 400, "BAD_REQUEST")
    assert "quota" in error["message"] and "destinations" in error["message"]
    error = assert_error(await client.post(SUBS, json=subscription_body()), 400, "BAD_REQUEST")
    assert "quota" in error["message"] and "subscriptions" in error["message"]
    reactivate = await client.put(f"{DESTS}/{inactive['id']}", json=destination_body())
    assert "quota" in assert_error(reactivate, 400, "BAD_REQUEST")["message"]
    # Freeing a subscription makes no room for a destination; freeing a destination does.
    first_sub = (await client.get(SUBS)).json()["subscriptions"][0]
    assert (await client.delete(f"{SUBS}/{first_sub['id']}")).status_code == 204
    reactivate = await client.put(f"{DESTS}/{inactive['id']}", json=destination_body())
    assert_error(reactivate, 400, "BAD_REQUEST")
    first_dest = (await client.get(DESTS)).json()["destinations"][0]
    assert (await client.delete(f"{DESTS}/{first_dest['id']}")).status_code == 204
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
    created = await DESTINATIONS.create(client)
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
    created = await DESTINATIONS.create(client)
    response = await client.post(f"{DESTS}/{created['id']}/rotate-secret", json=body)
    assert response.status_code == 200, response.text
    row = await _secrets_row(db_pool, created["id"])
    left = (row["previous_secret_expires_at"] - row["db_now"]).total_seconds()
    assert seconds - 5 < left <= seconds


async def test_rotate_secret_with_zero_grace_drops_the_old_one_at_once(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await DESTINATIONS.create(client)
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
    created = await DESTINATIONS.create(client)
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
