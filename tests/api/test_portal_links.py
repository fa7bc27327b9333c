"""`DELETE /api/v1/portal-links/{id}` on the real app and database: a revoke is idempotent and
keeps the first revocation's time; a link the org does not have is a 404."""

from __future__ import annotations

import asyncpg

from tests.api.conftest import Client, assert_error

LINKS = "/api/v1/portal-links"


async def test_revoking_twice_keeps_the_first_time_and_an_unknown_link_is_404(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    minted = await client.post(LINKS)
    assert minted.status_code == 201, minted.text
    link_id = minted.json()["id"]
    revoked_at = "SELECT revoked_at FROM dashboard_portal_links WHERE id = $1"

    assert (await client.delete(f"{LINKS}/{link_id}")).status_code == 204
    first = await db_pool.fetchval(revoked_at, link_id)
    assert first is not None
    assert (await client.delete(f"{LINKS}/{link_id}")).status_code == 204
    assert await db_pool.fetchval(revoked_at, link_id) == first

    assert_error(await client.delete(f"{LINKS}/pl_nope"), 404, "NOT_FOUND")
