"""The org webhook secret that signs per-job webhooks (seed 004): masked on GET, shown once
on rotate, created with the org, lazily for orgs that predate it, audited when rotated."""

from __future__ import annotations

import re
from collections.abc import Callable

import asyncpg

from libs.domain.secrets import mask_secret
from libs.infra.crypto import decrypt
from tests.api.conftest import Client, assert_error

SECRET = "/api/v1/organization/webhook-secret"
MASKED = re.compile(r"^whsec_••••.{4}$")


async def stored_secret(pool: asyncpg.Pool, org_id: str) -> str | None:
    blob = await pool.fetchval("SELECT webhook_secret_enc FROM organizations WHERE id = $1", org_id)
    return None if blob is None else decrypt(blob)


async def predate_webhook_secrets(pool: asyncpg.Pool, org_id: str) -> None:
    """Make the org one created before orgs had a webhook secret."""
    await pool.execute(
        "UPDATE organizations SET webhook_secret_enc = NULL, webhook_secret_masked = NULL"
        " WHERE id = $1",
        org_id,
    )


async def test_a_new_org_has_a_secret_shown_masked(client: Client, db_pool: asyncpg.Pool) -> None:
    secret = await stored_secret(db_pool, client.org_id)
    assert secret is not None and secret.startswith("whsec_")
    response = await client.get(SECRET)
    assert response.status_code == 200
    assert response.json() == {"webhookSecretMasked": mask_secret(secret)}
    assert MASKED.match(response.json()["webhookSecretMasked"])
    assert secret not in response.text


async def test_rotate_shows_the_new_secret_once_and_audits(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    old = await stored_secret(db_pool, client.org_id)
    response = await client.post(f"{SECRET}/rotate")
    assert response.status_code == 200, response.text
    body = response.json()
    new = body["webhookSecret"]
    assert new.startswith("whsec_") and new != old
    assert body["webhookSecretMasked"] == mask_secret(new)
    assert await stored_secret(db_pool, client.org_id) == new
    assert (await client.get(SECRET)).json() == {"webhookSecretMasked": mask_secret(new)}

    entries = (await client.get("/api/v1/audit-log")).json()["entries"]
    rotations = [e for e in entries if e["action"] == "organization.webhook_secret_rotated"]
    assert len(rotations) == 1
    assert new not in str(entries)


async def test_an_org_without_a_secret_gets_one_lazily(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    await predate_webhook_secrets(db_pool, client.org_id)
    response = await client.get(SECRET)
    assert response.status_code == 200
    secret = await stored_secret(db_pool, client.org_id)
    assert secret is not None
    assert response.json() == {"webhookSecretMasked": mask_secret(secret)}
    # A second GET shows the same secret: it is created once, not per call.
    assert (await client.get(SECRET)).json() == response.json()


async def test_creating_a_job_webhook_creates_a_missing_secret(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    await predate_webhook_secrets(db_pool, client.org_id)
    response = await client.post(
        "/api/v1/mapping-jobs", json={"webhook": {"url": "http://127.0.0.1:9/h"}}
    )
    assert response.status_code == 201, response.text
    assert await stored_secret(db_pool, client.org_id) is not None


async def test_each_org_has_its_own_secret(
    client: Client, make_client: Callable, db_pool: asyncpg.Pool
) -> None:
    other = await make_client()
    assert await stored_secret(db_pool, client.org_id) != await stored_secret(db_pool, other.org_id)
    await other.post(f"{SECRET}/rotate")
    entries = (await client.get("/api/v1/audit-log")).json()["entries"]
    assert not [e for e in entries if e["action"] == "organization.webhook_secret_rotated"]


async def test_unauthenticated_is_401(client: Client) -> None:
    assert_error(await client.http.get(SECRET), 401, "UNAUTHORIZED")
    assert_error(await client.http.post(f"{SECRET}/rotate"), 401, "UNAUTHORIZED")


async def test_reveal_shows_the_plaintext_and_audits(client: Client, db_pool: asyncpg.Pool) -> None:
    """Team Settings (seed 004): `?reveal=true` is the secret itself; a plain GET stays masked."""
    response = await client.get(SECRET, params={"reveal": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == {"webhookSecret": await stored_secret(db_pool, client.org_id)}
    assert "webhookSecret" not in (await client.get(SECRET)).json()
    assert "webhookSecret" not in (await client.get(SECRET, params={"reveal": "false"})).json()
    assert_error(await client.get(SECRET, params={"reveal": "maybe"}), 400, "BAD_REQUEST")
    entries = (await client.get("/api/v1/audit-log")).json()["entries"]
    reveals = [e for e in entries if e["action"] == "organization.webhook_secret_revealed"]
    assert len(reveals) == 1
    assert response.json()["webhookSecret"] not in str(entries)


async def test_reveal_creates_a_missing_secret(client: Client, db_pool: asyncpg.Pool) -> None:
    await predate_webhook_secrets(db_pool, client.org_id)
    revealed = (await client.get(SECRET, params={"reveal": "true"})).json()["webhookSecret"]
    assert revealed == await stored_secret(db_pool, client.org_id)


async def previous(pool: asyncpg.Pool, org_id: str) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT previous_webhook_secret_enc, previous_webhook_secret_expires_at,"
        " previous_webhook_secret_expires_at - now() AS left FROM organizations WHERE id = $1",
        org_id,
    )


async def test_rotation_keeps_the_old_secret_for_a_grace_window(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    old = await stored_secret(db_pool, client.org_id)
    body = (await client.post(f"{SECRET}/rotate")).json()
    assert body["previousSecretExpiresAt"] is not None
    kept = await previous(db_pool, client.org_id)
    assert decrypt(kept["previous_webhook_secret_enc"]) == old
    assert 290 <= kept["left"].total_seconds() <= 300  # the default: 300 s

    await client.post(f"{SECRET}/rotate", json={"gracePeriodSeconds": 60})
    kept = await previous(db_pool, client.org_id)
    assert decrypt(kept["previous_webhook_secret_enc"]) == body["webhookSecret"]
    assert 50 <= kept["left"].total_seconds() <= 60

    immediate = (await client.post(f"{SECRET}/rotate", json={"gracePeriodSeconds": 0})).json()
    assert immediate["previousSecretExpiresAt"] is None
    assert (await previous(db_pool, client.org_id))["previous_webhook_secret_enc"] is None
    for bad in (-1, 86_401, "x"):
        response = await client.post(f"{SECRET}/rotate", json={"gracePeriodSeconds": bad})
        assert_error(response, 400, "BAD_REQUEST")
