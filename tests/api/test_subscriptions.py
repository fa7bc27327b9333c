"""What is the webhook-subscriptions door's own (seed 002): a rotate-secret that drops the old
secret at once, enum event names, the quota, the headers it refuses. What it does like the
delivery-destinations door is in test_webhook_doors.py."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from libs.infra import crypto
from services.api.endpoints import repository as endpoints_repository
from tests.api.conftest import Client, assert_error, subscription_body
from tests.api.doors import SUBSCRIPTIONS

SUBS = SUBSCRIPTIONS.path


async def test_rotate_secret_returns_a_new_one_and_drops_the_old(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await SUBSCRIPTIONS.create(client)
    response = await client.post(f"{SUBS}/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {"id", "signingSecret"}
    assert rotated["id"] == created["id"]
    new_secret = rotated["signingSecret"]
    assert new_secret.startswith("whsec_") and new_secret != created["signingSecret"]
    shown = (await client.get(f"{SUBS}/{created['id']}")).json()
    assert shown["signingSecretMasked"] == f"whsec_••••{new_secret[-4:]}"
    row = await db_pool.fetchrow(
        "SELECT secret_enc, previous_secret_enc, previous_secret_expires_at FROM endpoints"
        " WHERE id = $1",
        created["id"],
    )
    assert crypto.decrypt(row["secret_enc"]) == new_secret
    # Seed 002: the old secret is invalid at once, so nothing may sign with it any more.
    assert row["previous_secret_enc"] is None and row["previous_secret_expires_at"] is None


@pytest.mark.parametrize(
    ("events", "fragment"),
    [
        ([], "at least one"),
        (["NOT_A_THING"], "NOT_A_THING"),
        (["mapping.completed"], "mapping.completed"),  # this door speaks enum names
        (["WEBHOOK_TEST"], "webhook.test"),
    ],
)
async def test_event_list_is_validated(client: Client, events: list[str], fragment: str) -> None:
    error = assert_error(
        await client.post(SUBS, json=subscription_body(events=events)), 400, "BAD_REQUEST"
    )
    assert fragment in error["message"]


async def test_duplicate_events_are_stored_once(client: Client) -> None:
    created = await SUBSCRIPTIONS.create(
        client, events=["MAPPING_COMPLETED", "MAPPING_COMPLETED", "EXPORT_READY"]
    )
    assert created["events"] == ["MAPPING_COMPLETED", "EXPORT_READY"]


async def test_quota_counts_active_endpoints_only(client: Client) -> None:
    for _ in range(10):
        await SUBSCRIPTIONS.create(client)
    inactive = await SUBSCRIPTIONS.create(client, status="INACTIVE")  # INACTIVE ones never count
    error = assert_error(await client.post(SUBS, json=subscription_body()), 400, "BAD_REQUEST")
    assert "quota" in error["message"]
    # Re-activating counts against the quota too.
    reactivate = await client.put(f"{SUBS}/{inactive['id']}", json=subscription_body())
    assert "quota" in assert_error(reactivate, 400, "BAD_REQUEST")["message"]
    # An ACTIVE one can still be edited while the org is at the quota.
    first = (await client.get(SUBS)).json()["subscriptions"][0]
    edit = await client.put(f"{SUBS}/{first['id']}", json=subscription_body(name="edited"))
    assert edit.status_code == 200, edit.text
    # Freeing a slot makes room again.
    assert (await client.delete(f"{SUBS}/{first['id']}")).status_code == 204
    assert (
        await client.put(f"{SUBS}/{inactive['id']}", json=subscription_body())
    ).status_code == 200
    assert_error(await client.post(SUBS, json=subscription_body()), 400, "BAD_REQUEST")
    listed = (await client.get(f"{SUBS}?activeOnly=true")).json()["subscriptions"]
    assert len(listed) == 10


@pytest.mark.parametrize(
    "name",
    [
        "X-Webhook-Signature",
        "x-webhook-event",
        "X-Webhook-Delivery",
        "Content-Type",
        "content-length",
        "Host",
        "webhook-id",
        "webhook-timestamp",
        "Webhook-Signature",
        "Authorization",
        "Transfer-Encoding",
    ],
)
async def test_reserved_additional_headers_are_refused(client: Client, name: str) -> None:
    body = subscription_body(additionalHeaders={"X-Fine": "ok", name: "evil"})
    error = assert_error(await client.post(SUBS, json=body), 400, "BAD_REQUEST")
    assert name in error["message"]
    assert (await client.get(SUBS)).json() == {"subscriptions": []}


@pytest.mark.parametrize(
    "overrides",
    [
        {"additionalHeaders": {"X-Split": "a\r\nX-Injected: 1"}},
        {"additionalHeaders": {"X-Split": "a\nb"}},
        {"additionalHeaders": {"Bad Name": "v"}},
        {"additionalHeaders": {"": "v"}},
        {"additionalHeaders": {"X-Ünicode": "v"}},
        {"additionalHeaders": {"X-A": "1", "x-a": "2"}},
        {"apiKeyName": "X-Webhook-Signature", "apiKeyValue": "v"},
        {"apiKeyName": "X-Key"},
        {"apiKeyValue": "v"},
        {"apiKeyName": "X-Key", "apiKeyValue": "line\r\nbreak"},
        {"apiKeyName": "X-Key", "apiKeyValue": "v", "additionalHeaders": {"x-key": "w"}},
    ],
)
async def test_invalid_headers_are_refused(client: Client, overrides: dict) -> None:
    assert_error(await client.post(SUBS, json=subscription_body(**overrides)), 400, "BAD_REQUEST")


async def test_authorization_may_be_the_api_key_header(client: Client) -> None:
    created = await SUBSCRIPTIONS.create(
        client, apiKeyName="Authorization", apiKeyValue="Bearer abcdefghijkl"
    )
    assert created["apiKeyName"] == "Authorization"
    assert created["apiKeyValueMasked"] == "••••ijkl"


async def test_concurrent_creates_never_exceed_the_quota(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(9):
        await SUBSCRIPTIONS.create(client)
    # Widen the race window: every request lingers between counting and inserting.
    count_active = endpoints_repository.count_active

    async def slow_count(*args: object, **kwargs: object) -> int:
        counted = await count_active(*args, **kwargs)  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        return counted

    monkeypatch.setattr(endpoints_repository, "count_active", slow_count)
    responses = await asyncio.gather(
        *(client.post(SUBS, json=subscription_body()) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [201, 400, 400, 400, 400, 400]
    active = (await client.get(f"{SUBS}?activeOnly=true")).json()["subscriptions"]
    assert len(active) == 10
