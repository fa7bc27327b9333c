"""The webhook-subscriptions door (seed 002): CRUD, secrets, plan gates, quota, tenancy."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from libs.domain.plans import Plan
from libs.infra import crypto
from services.api.endpoints import repository as endpoints_repository
from tests.api.conftest import (
    Client,
    MakeClient,
    assert_error,
    bind_probe_queue,
    insert_delivery,
    next_message,
    subscription_body,
    wait_until,
)

SUBS = "/api/v1/webhook-subscriptions"
SECRET_FIELDS = {"signingSecret", "apiKeyValue"}
RESPONSE_FIELDS = {
    "id",
    "organizationId",
    "name",
    "webhookUrl",
    "events",
    "apiKeyName",
    "apiKeyValueMasked",
    "additionalHeaders",
    "status",
    "deactivatedReason",
    "signingSecretMasked",
    "signatureScheme",
    "createdAt",
    "updatedAt",
}


async def create(client: Client, **overrides: object) -> dict:
    response = await client.post(SUBS, json=subscription_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_every_field_and_the_secret_once(client: Client) -> None:
    created = await create(
        client,
        apiKeyName="X-API-Key",
        apiKeyValue="key-value-123456789",
        additionalHeaders={"X-Team": "ops"},
    )
    assert set(created) == RESPONSE_FIELDS | {"signingSecret"}
    assert created["id"].startswith("sub_")
    assert created["organizationId"] == client.org_id
    assert created["name"] == "Inventory ops"
    assert created["webhookUrl"] == "https://localhost/webhooks/mapping"
    assert created["events"] == ["MAPPING_COMPLETED"]
    assert created["status"] == "ACTIVE"
    assert created["deactivatedReason"] is None
    assert created["apiKeyName"] == "X-API-Key"
    assert created["apiKeyValueMasked"] == "••••6789"
    assert created["additionalHeaders"] == {"X-Team": "ops"}
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    assert created["signingSecretMasked"] == f"whsec_••••{secret[-4:]}"
    assert created["createdAt"].endswith("Z")

    fetched = (await client.get(f"{SUBS}/{created['id']}")).json()
    listed = (await client.get(SUBS)).json()["subscriptions"]
    for shown in (fetched, *listed):
        assert set(shown) == RESPONSE_FIELDS  # no signingSecret, no apiKeyValue
        assert shown["signingSecretMasked"] == created["signingSecretMasked"]
    assert secret not in str(fetched) and secret not in str(listed)
    assert [s["id"] for s in listed] == [created["id"]]


async def test_secrets_and_urls_are_encrypted_at_rest(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    url = "https://localhost/hook?token=very-secret-url-token"
    created = await create(client, webhookUrl=url, apiKeyName="X-Key", apiKeyValue="api-key-plain")
    assert created["webhookUrl"] == "https://localhost/hook?token=••••"
    row = await db_pool.fetchrow(
        "SELECT secret_enc, url_enc, url_masked, api_key_value_enc FROM endpoints WHERE id = $1",
        created["id"],
    )
    raw = row["secret_enc"] + row["url_enc"] + row["api_key_value_enc"]
    for plaintext in (created["signingSecret"], "very-secret-url-token", "api-key-plain"):
        assert plaintext.encode() not in raw
    assert "very-secret-url-token" not in row["url_masked"]
    # Encrypted, not discarded: the sender can still read them back.
    assert crypto.decrypt(row["secret_enc"]) == created["signingSecret"]
    assert crypto.decrypt(row["url_enc"]) == url
    assert crypto.decrypt(row["api_key_value_enc"]) == "api-key-plain"


async def test_active_only_filter(client: Client) -> None:
    active = await create(client)
    inactive = await create(client, status="INACTIVE")
    everything = (await client.get(SUBS)).json()["subscriptions"]
    assert [s["id"] for s in everything] == [active["id"], inactive["id"]]
    only_active = (await client.get(f"{SUBS}?activeOnly=true")).json()["subscriptions"]
    assert [s["id"] for s in only_active] == [active["id"]]
    explicit_false = (await client.get(f"{SUBS}?activeOnly=false")).json()["subscriptions"]
    assert len(explicit_false) == 2


async def test_put_replaces_the_subscription(pro_client: Client) -> None:
    created = await create(
        pro_client, apiKeyName="X-Key", apiKeyValue="old-value", additionalHeaders={"X-A": "1"}
    )
    body = subscription_body(
        name="Renamed",
        webhookUrl="https://localhost/other",
        events=["MAPPING_ERROR_RESOLVED", "INVENTORY_DUPLICATE_RESOLVED"],
        status="INACTIVE",
    )
    response = await pro_client.put(f"{SUBS}/{created['id']}", json=body)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert set(replaced) == RESPONSE_FIELDS
    assert replaced["name"] == "Renamed"
    assert replaced["webhookUrl"] == "https://localhost/other"
    assert replaced["events"] == ["MAPPING_ERROR_RESOLVED", "INVENTORY_DUPLICATE_RESOLVED"]
    assert replaced["status"] == "INACTIVE"
    # Replace, not patch: what the body leaves out is gone.
    assert replaced["apiKeyName"] is None and replaced["apiKeyValueMasked"] is None
    assert replaced["additionalHeaders"] == {}
    assert replaced["signingSecretMasked"] == created["signingSecretMasked"]
    assert replaced["createdAt"] == created["createdAt"]
    assert replaced["updatedAt"] > created["updatedAt"]
    assert (await pro_client.get(f"{SUBS}/{created['id']}")).json() == replaced


async def test_delete_removes_it_and_its_delivery_history(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
    _, delivery_id = await insert_delivery(
        db_pool, client.org_id, created["id"], attempts=[(500, None, False)]
    )
    response = await client.delete(f"{SUBS}/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(f"{SUBS}/{created['id']}"), 404, "NOT_FOUND")
    assert_error(await client.delete(f"{SUBS}/{created['id']}"), 404, "NOT_FOUND")
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE id = $1", delivery_id) == 0
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1", delivery_id
        )
        == 0
    )


async def test_rotate_secret_returns_a_new_one_and_drops_the_old(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    created = await create(client)
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


async def test_test_call_publishes_a_targeted_webhook_test_event(
    client: Client, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    created = await create(client)
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "webhook.test")
    response = await client.post(f"{SUBS}/{created['id']}/test")
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
    assert event["data"]["subscriptionId"] == created["id"]

    message = await next_message(probe, lambda m: m.message_id == event["id"])
    body = orjson.loads(message.body)
    assert body["targetEndpointId"] == created["id"]
    assert body["targetDeliveryId"] == delivery_id
    assert body["type"] == "webhook.test"

    async def marked() -> bool:  # after the confirm, in the background
        return await db_pool.fetchval(
            "SELECT published_at IS NOT NULL FROM events WHERE id = $1", event["id"]
        )

    await wait_until(marked)


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
async def test_another_orgs_subscription_is_not_found(
    make_client: MakeClient, method: str, suffix: str, send_body: bool, db_pool: asyncpg.Pool
) -> None:
    owner = await make_client(Plan.FREE)
    stranger = await make_client(Plan.ENTERPRISE)
    created = await create(owner)
    before = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"])
    kwargs = {"json": subscription_body(name="hijacked")} if send_body else {}
    response = await stranger.http.request(
        method,
        f"{SUBS}/{created['id']}{suffix}",
        headers={"Authorization": f"Bearer {stranger.token}"},
        **kwargs,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"]) == before
    assert (await stranger.get(SUBS)).json() == {"subscriptions": []}
    # Unknown ids answer the same way.
    missing = await owner.http.request(
        method,
        f"{SUBS}/sub_00000000000000000000000000{suffix}",
        headers={"Authorization": f"Bearer {owner.token}"},
        **kwargs,
    )
    assert_error(missing, 404, "NOT_FOUND")


async def test_plan_gate_names_the_offending_events(client: Client, pro_client: Client) -> None:
    events = ["MAPPING_COMPLETED", "MAPPING_ERROR_RESOLVED", "INVENTORY_DUPLICATE_RESOLVED"]
    error = assert_error(
        await client.post(SUBS, json=subscription_body(events=events)), 403, "FORBIDDEN"
    )
    assert error["events"] == ["MAPPING_ERROR_RESOLVED", "INVENTORY_DUPLICATE_RESOLVED"]
    assert (await client.get(SUBS)).json() == {"subscriptions": []}

    # PUT is gated the same way, whatever the status.
    created = await create(client)
    for status in ("ACTIVE", "INACTIVE"):
        body = subscription_body(events=["MAPPING_ERROR_RESOLVED"], status=status)
        error = assert_error(
            await client.put(f"{SUBS}/{created['id']}", json=body), 403, "FORBIDDEN"
        )
        assert error["events"] == ["MAPPING_ERROR_RESOLVED"]
    assert (await client.get(f"{SUBS}/{created['id']}")).json()["events"] == ["MAPPING_COMPLETED"]

    # The same request is fine on PRO.
    assert (await pro_client.post(SUBS, json=subscription_body(events=events))).status_code == 201


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
    created = await create(
        client, events=["MAPPING_COMPLETED", "MAPPING_COMPLETED", "EXPORT_READY"]
    )
    assert created["events"] == ["MAPPING_COMPLETED", "EXPORT_READY"]


async def test_quota_counts_active_endpoints_only(client: Client) -> None:
    for _ in range(10):
        await create(client)
    inactive = await create(client, status="INACTIVE")  # INACTIVE ones never count
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
    created = await create(client, apiKeyName="Authorization", apiKeyValue="Bearer abcdefghijkl")
    assert created["apiKeyName"] == "Authorization"
    assert created["apiKeyValueMasked"] == "••••ijkl"


async def test_concurrent_creates_never_exceed_the_quota(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(9):
        await create(client)
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
