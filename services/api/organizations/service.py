"""Organizations and their API tokens (only a SHA-256 of a token is ever stored)."""

from __future__ import annotations

import hashlib

import asyncpg
from pydantic import BaseModel

from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from libs.common.secrets import generate_api_token


class CreatedOrganization(BaseModel):
    organizationId: str  # noqa: N815 - printed as the CLI's JSON
    apiToken: str  # noqa: N815


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create_organization(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, plan: Plan
) -> CreatedOrganization:
    org_id = new_id(IdPrefix.ORGANIZATION)
    token = generate_api_token()
    async with _acquire(conn) as c, c.transaction():
        await c.execute(
            "INSERT INTO organizations (id, name, plan) VALUES ($1, $2, $3)", org_id, name, plan
        )
        await c.execute(
            "INSERT INTO api_tokens (token_hash, organization_id) VALUES ($1, $2)",
            hash_token(token),
            org_id,
        )
    return CreatedOrganization(organizationId=org_id, apiToken=token)


async def organization_for_token(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT o.id, o.plan FROM api_tokens t JOIN organizations o ON o.id = t.organization_id"
        " WHERE t.token_hash = $1",
        hash_token(token),
    )


class _acquire:  # noqa: N801 - used like a function
    """Accept a pool or a connection alike."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn
        self._ctx = conn.acquire() if isinstance(conn, asyncpg.Pool) else None

    async def __aenter__(self) -> asyncpg.Connection:
        return await self._ctx.__aenter__() if self._ctx else self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._ctx:
            await self._ctx.__aexit__(*exc)
