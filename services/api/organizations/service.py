"""Organizations and their API tokens (only a SHA-256 of a token is ever stored)."""

from __future__ import annotations

import hashlib

import asyncpg
from pydantic import BaseModel

from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from libs.common.secrets import generate_api_token
from services.api.organizations import repository


class CreatedOrganization(BaseModel):
    organizationId: str  # camelCase: printed as the CLI's JSON
    apiToken: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create_organization(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, plan: Plan
) -> CreatedOrganization:
    org_id = new_id(IdPrefix.ORGANIZATION)
    token = generate_api_token()
    async with _acquire(conn) as c, c.transaction():
        await repository.insert_organization(c, org_id, name, plan.value)
        await repository.insert_token(c, hash_token(token), org_id)
    return CreatedOrganization(organizationId=org_id, apiToken=token)


async def organization_for_token(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    return await repository.organization_for_token_hash(pool, hash_token(token))


class _acquire:  # lowercase: used like a function
    """Accept a pool or a connection alike."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn
        self._ctx = conn.acquire() if isinstance(conn, asyncpg.Pool) else None

    async def __aenter__(self) -> asyncpg.Connection:
        return await self._ctx.__aenter__() if self._ctx else self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._ctx:
            await self._ctx.__aexit__(*exc)
