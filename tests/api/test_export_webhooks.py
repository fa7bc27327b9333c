"""Export webhooks (seed 000) through the API: {url, active} CRUD with exact status codes,
activeOnly, a URL token kept secret, another org's ids, URL safety outside dev."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from libs.infra.crypto import decrypt
from libs.infra.settings import Settings
from tests.api.conftest import Client, assert_error, fill_subscription_quota, subscription_body

HOOKS = "/api/v1/export-webhooks"
TOKEN_URL = "http://127.0.0.1:9/webhooks/mapping-export?secret=abc123-export-token"


async def create(client: Client, url: str = TOKEN_URL, **body: object) -> dict:
    response = await client.post(HOOKS, json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_the_secret_once_and_masks_the_token(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    hook = await create(client, active=True)
    assert hook["id"].startswith("ewh_")
    assert hook["url"] == "http://127.0.0.1:9/webhooks/mapping-export?secret=••••"
    assert hook["active"] is True
    assert hook["events"] == ["export.ready"]
    assert hook["organizationId"] == client.org_id
    assert hook["signingSecret"].startswith("whsec_")
    assert hook["signingSecretMasked"].startswith("whsec_••••")
    assert "abc123" not in str(hook)

    fetched = await client.get(f"{HOOKS}/{hook['id']}")
    assert fetched.status_code == 200
    assert "signingSecret" not in fetched.json()
    assert fetched.json() == {k: v for k, v in hook.items() if k != "signingSecret"}
    assert "abc123" not in fetched.text

    row = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", hook["id"])
    assert row["kind"] == "EXPORT_WEBHOOK" and row["status"] == "ACTIVE"
    assert b"abc123" not in row["url_enc"] and "abc123" not in row["url_masked"]
    assert decrypt(row["url_enc"]) == TOKEN_URL
    assert decrypt(row["secret_enc"]) == hook["signingSecret"]


async def test_active_defaults_to_true_and_list_filters_active_only(client: Client) -> None:
    on = await create(client, "http://127.0.0.1:9/on")
    off = await create(client, "http://127.0.0.1:9/off", active=False)
    assert on["active"] is True and off["active"] is False

    listed = await client.get(HOOKS)
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()["webhooks"]] == [on["id"], off["id"]]
    active = await client.get(HOOKS, params={"activeOnly": "true"})
    assert [w["id"] for w in active.json()["webhooks"]] == [on["id"]]
    assert "abc123" not in listed.text


async def test_put_changes_url_and_active_and_delete_is_204(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    hook = await create(client)
    new_url = "http://127.0.0.1:9/moved?token=t0ken-moved"
    response = await client.put(f"{HOOKS}/{hook['id']}", json={"url": new_url, "active": False})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["active"] is False
    assert updated["url"] == "http://127.0.0.1:9/moved?token=••••"
    assert "signingSecret" not in updated and "t0ken" not in response.text
    row = await db_pool.fetchrow("SELECT url_enc, status FROM endpoints WHERE id = $1", hook["id"])
    assert decrypt(row["url_enc"]) == new_url and row["status"] == "INACTIVE"

    deleted = await client.delete(f"{HOOKS}/{hook['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await client.get(f"{HOOKS}/{hook['id']}"), 404, "NOT_FOUND")
    assert_error(await client.delete(f"{HOOKS}/{hook['id']}"), 404, "NOT_FOUND")


async def test_another_orgs_webhook_is_not_found(client: Client, make_client: Callable) -> None:
    other = await make_client()
    theirs = await create(other)
    body = {"url": "http://127.0.0.1:9/mine", "active": True}
    assert_error(await client.get(f"{HOOKS}/{theirs['id']}"), 404, "NOT_FOUND")
    assert_error(await client.put(f"{HOOKS}/{theirs['id']}", json=body), 404, "NOT_FOUND")
    assert_error(await client.delete(f"{HOOKS}/{theirs['id']}"), 404, "NOT_FOUND")
    assert (await client.get(HOOKS)).json() == {"webhooks": []}
    assert (await other.get(f"{HOOKS}/{theirs['id']}")).status_code == 200


async def test_other_doors_ids_are_not_export_webhooks(client: Client) -> None:
    sub = await client.post("/api/v1/webhook-subscriptions", json=subscription_body())
    assert sub.status_code == 201
    assert_error(await client.get(f"{HOOKS}/{sub.json()['id']}"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"active": True},
        {"url": 5},
        {"url": "http://127.0.0.1:9/x", "active": "maybe"},
        {"url": "not a url"},
        {"url": "ftp://127.0.0.1/x"},
    ],
)
async def test_invalid_bodies_are_400(client: Client, body: dict) -> None:
    assert_error(await client.post(HOOKS, json=body), 400, "BAD_REQUEST")
    assert (await client.get(HOOKS)).json() == {"webhooks": []}


async def test_export_webhooks_are_not_in_the_subscription_quota(
    client: Client, settings: Settings
) -> None:
    await fill_subscription_quota(client, settings)
    await create(client)


async def test_unauthenticated_is_401(client: Client) -> None:
    assert_error(await client.http.get(HOOKS), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/x", "https://10.0.0.1/x", "https://[::1]/x?secret=abc"]
)
async def test_unsafe_urls_are_refused_outside_dev(prod_client: Client, url: str) -> None:
    assert_error(await prod_client.post(HOOKS, json={"url": url}), 400, "BAD_REQUEST")


async def test_put_toggles_active_alone_and_keeps_the_url(
    client: Client, db_pool: asyncpg.Pool, make_client: Callable
) -> None:
    """Seed 000: "Use PUT to change the URL or toggle the active flag" — `active` alone keeps
    the stored URL (token included); a POST still needs its url."""
    hook = await create(client)
    off = await client.put(f"{HOOKS}/{hook['id']}", json={"active": False})
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False and off.json()["url"] == hook["url"]
    blob = await db_pool.fetchval("SELECT url_enc FROM endpoints WHERE id = $1", hook["id"])
    assert decrypt(blob) == TOKEN_URL
    listed = (await client.get(HOOKS, params={"activeOnly": "true"})).json()["webhooks"]
    assert hook["id"] not in [w["id"] for w in listed]
    on = await client.put(f"{HOOKS}/{hook['id']}", json={"active": True})
    assert on.status_code == 200 and on.json()["active"] is True
    assert_error(await client.post(HOOKS, json={"active": True}), 400, "BAD_REQUEST")
    other = await make_client()
    response = await other.put(f"{HOOKS}/{hook['id']}", json={"active": False})
    assert_error(response, 404, "NOT_FOUND")
