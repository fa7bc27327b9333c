"""What webhook subscriptions (seed 002) and delivery destinations (seed 001) do alike, tested
on each: CRUD with every field and the secret shown once, secrets encrypted at rest,
activeOnly, replace not patch, delete with its history, plan gates in the door's spelling,
tenancy, /test, the delivery history, signatureScheme and orderedDelivery."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from libs.domain.plans import Plan
from libs.infra import crypto
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import Client, MakeClient, assert_error, insert_delivery, wait_until
from tests.api.doors import WEBHOOK_DOORS, Door


@pytest.fixture(params=WEBHOOK_DOORS, ids=lambda door: door.name)
def door(request: pytest.FixtureRequest) -> Door:
    return request.param


async def test_create_returns_every_field_and_the_secret_once(client: Client, door: Door) -> None:
    events = [door.spell("mapping.completed"), door.spell("export.ready")]
    created = await door.create(
        client,
        apiKeyName="X-API-Key",
        apiKeyValue="key-value-123456789",
        additionalHeaders={"X-Team": "ops"},
        events=events,
    )
    assert set(created) == door.fields | {"signingSecret"}
    assert created["id"].startswith(f"{door.id_prefix}_")
    assert len(created["id"]) == len(door.id_prefix) + 1 + 26
    assert {name: created[name] for name in door.constants} == door.constants
    assert created["organizationId"] == client.org_id
    assert created["name"] == door.base_body["name"]
    assert created["webhookUrl"] == door.base_body["webhookUrl"]
    assert created["events"] == events
    assert created["status"] == "ACTIVE" and created["deactivatedReason"] is None
    assert created["signatureScheme"] == "v1"
    assert created["apiKeyName"] == "X-API-Key"
    assert created["apiKeyValueMasked"] == "••••6789"
    assert created["additionalHeaders"] == {"X-Team": "ops"}
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    assert created["signingSecretMasked"] == f"whsec_••••{secret[-4:]}"
    assert created["createdAt"].endswith("Z")

    fetched = (await client.get(door.url(created["id"]))).json()
    listed = (await client.get(door.path)).json()
    assert set(listed) == {door.list_key}
    for shown in (fetched, *listed[door.list_key]):
        assert set(shown) == door.fields  # no signingSecret, no apiKeyValue
        assert shown["signingSecretMasked"] == created["signingSecretMasked"]
    assert secret not in str(fetched) and secret not in str(listed)
    assert [e["id"] for e in listed[door.list_key]] == [created["id"]]
    # One endpoints table, separate doors: the other door neither lists nor finds it.
    for other in WEBHOOK_DOORS:
        if other is not door:
            assert (await client.get(other.path)).json() == {other.list_key: []}
            assert_error(await client.get(other.url(created["id"])), 404, "NOT_FOUND")


async def test_secrets_and_urls_are_encrypted_at_rest(
    client: Client, db_pool: asyncpg.Pool, door: Door
) -> None:
    url = "https://localhost/hook?token=very-secret-url-token"
    created = await door.create(
        client, webhookUrl=url, apiKeyName="X-Key", apiKeyValue="api-key-plain"
    )
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


async def test_active_only_filter(client: Client, door: Door) -> None:
    active = await door.create(client)
    inactive = await door.create(client, status="INACTIVE")
    assert [e["id"] for e in await door.listed(client)] == [active["id"], inactive["id"]]
    only_active = await door.listed(client, "?activeOnly=true")
    assert [e["id"] for e in only_active] == [active["id"]]
    assert len(await door.listed(client, "?activeOnly=false")) == 2


async def test_put_replaces_the_endpoint(pro_client: Client, door: Door) -> None:
    created = await door.create(
        pro_client, apiKeyName="X-Key", apiKeyValue="old-value", additionalHeaders={"X-A": "1"}
    )
    events = [door.spell("mapping.error.resolved"), door.spell("inventory.duplicate.resolved")]
    body = door.body(
        name="Renamed",
        webhookUrl="https://localhost/other",
        events=events,
        status="INACTIVE",
        signatureScheme="standard-webhooks",
    )
    response = await pro_client.put(door.url(created["id"]), json=body)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert set(replaced) == door.fields
    assert replaced["name"] == "Renamed"
    assert replaced["webhookUrl"] == "https://localhost/other"
    assert replaced["events"] == events
    assert replaced["status"] == "INACTIVE"
    assert replaced["signatureScheme"] == "standard-webhooks"
    # Replace, not patch: what the body leaves out is gone.
    assert replaced["apiKeyName"] is None and replaced["apiKeyValueMasked"] is None
    assert replaced["additionalHeaders"] == {}
    assert replaced["signingSecretMasked"] == created["signingSecretMasked"]
    assert replaced["createdAt"] == created["createdAt"]
    assert replaced["updatedAt"] > created["updatedAt"]
    assert (await pro_client.get(door.url(created["id"]))).json() == replaced


async def test_delete_removes_it_and_its_delivery_history(
    client: Client, db_pool: asyncpg.Pool, door: Door
) -> None:
    created = await door.create(client)
    _, delivery_id = await insert_delivery(
        db_pool, client.org_id, created["id"], attempts=[(500, None, False)]
    )
    response = await client.delete(door.url(created["id"]))
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(door.url(created["id"])), 404, "NOT_FOUND")
    assert_error(await client.delete(door.url(created["id"])), 404, "NOT_FOUND")
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE id = $1", delivery_id) == 0
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1", delivery_id
        )
        == 0
    )


async def test_test_call_publishes_a_targeted_webhook_test_event(
    client: Client, db_pool: asyncpg.Pool, amqp, topology, door: Door
) -> None:
    created = await door.create(client)
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "webhook.test")
    response = await client.post(door.url(created["id"], "/test"))
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
        door.test_data_key: created["id"],
    }

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
async def test_another_orgs_endpoint_is_not_found(
    make_client: MakeClient,
    method: str,
    suffix: str,
    send_body: bool,
    db_pool: asyncpg.Pool,
    door: Door,
) -> None:
    owner = await make_client(Plan.FREE)
    stranger = await make_client(Plan.ENTERPRISE)
    created = await door.create(owner)
    before = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"])
    kwargs = {"json": door.body(name="hijacked")} if send_body else {}
    response = await stranger.http.request(
        method,
        door.url(created["id"], suffix),
        headers={"Authorization": f"Bearer {stranger.token}"},
        **kwargs,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", created["id"]) == before
    assert (await stranger.get(door.path)).json() == {door.list_key: []}
    # Unknown ids answer the same way.
    missing = await owner.http.request(
        method,
        door.url(f"{door.id_prefix}_00000000000000000000000000", suffix),
        headers={"Authorization": f"Bearer {owner.token}"},
        **kwargs,
    )
    assert_error(missing, 404, "NOT_FOUND")


async def test_plan_gate_names_the_offending_events(
    client: Client, pro_client: Client, door: Door
) -> None:
    gated = [door.spell("mapping.error.resolved"), door.spell("inventory.duplicate.resolved")]
    events = [door.spell("mapping.completed"), *gated]
    error = assert_error(
        await client.post(door.path, json=door.body(events=events)), 403, "FORBIDDEN"
    )
    assert error["events"] == gated
    assert await door.listed(client) == []

    # PUT is gated the same way, whatever the status.
    created = await door.create(client)
    for status in ("ACTIVE", "INACTIVE"):
        body = door.body(events=gated[:1], status=status)
        error = assert_error(await client.put(door.url(created["id"]), json=body), 403, "FORBIDDEN")
        assert error["events"] == gated[:1]
    shown = (await client.get(door.url(created["id"]))).json()
    assert shown["events"] == [door.spell("mapping.completed")]

    # The same request is fine on PRO.
    assert (await pro_client.post(door.path, json=door.body(events=events))).status_code == 201


async def test_deliveries_list_this_endpoints_history(
    client: Client, db_pool: asyncpg.Pool, door: Door
) -> None:
    created = await door.create(client)
    other = await door.create(client)
    _, delivery_id = await insert_delivery(
        db_pool,
        client.org_id,
        created["id"],
        attempts=[(500, None, False), (200, None, True)],
        status="SUCCEEDED",
        attempt_count=2,
    )
    await insert_delivery(db_pool, client.org_id, other["id"])
    response = await client.get(door.url(created["id"], "/deliveries"))
    assert response.status_code == 200, response.text
    [delivery] = response.json()["deliveries"]  # not the other endpoint's
    assert delivery["id"] == delivery_id
    assert delivery["status"] == "SUCCEEDED"
    assert [a["httpStatus"] for a in delivery["attempts"]] == [500, 200]
    limit_0 = await client.get(door.url(created["id"], "/deliveries?limit=0"))
    assert_error(limit_0, 400, "BAD_REQUEST")


async def test_signature_scheme_is_stored_per_endpoint(
    client: Client, db_pool: asyncpg.Pool, door: Door
) -> None:
    default = await door.create(client)
    chosen = await door.create(client, signatureScheme="standard-webhooks")
    assert default["signatureScheme"] == "v1"
    assert chosen["signatureScheme"] == "standard-webhooks"
    stored = await db_pool.fetchval(
        "SELECT signature_scheme FROM endpoints WHERE id = $1", chosen["id"]
    )
    assert stored == "standard-webhooks"
    shown = (await client.get(door.url(chosen["id"]))).json()
    assert shown["signatureScheme"] == "standard-webhooks"
    bad = await client.post(door.path, json=door.body(signatureScheme="v2"))
    assert_error(bad, 400, "BAD_REQUEST")


async def test_ordered_delivery_is_opt_in_and_replaced_with_the_rest(
    client: Client, db_pool: asyncpg.Pool, door: Door
) -> None:
    plain = await door.create(client)
    assert plain["orderedDelivery"] is False
    ordered = await door.create(client, orderedDelivery=True)
    assert ordered["orderedDelivery"] is True
    assert (await client.get(door.url(ordered["id"]))).json()["orderedDelivery"] is True
    # Stored with the endpoint's config, where the dispatcher reads it.
    config = await db_pool.fetchval("SELECT config FROM endpoints WHERE id = $1", ordered["id"])
    assert config == {"orderedDelivery": True}
    # PUT replaces: left out, it is off again.
    replaced = await client.put(door.url(ordered["id"]), json=door.body())
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["orderedDelivery"] is False
    bad = await client.post(door.path, json=door.body(orderedDelivery="sometimes"))
    assert_error(bad, 400, "BAD_REQUEST")
