"""All SQL for organizations and their API tokens."""

from __future__ import annotations

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool


async def insert_organization(conn: Executor, org_id: str, name: str, plan: str) -> None:
    await conn.execute(
        "INSERT INTO organizations (id, name, plan) VALUES ($1, $2, $3)", org_id, name, plan
    )


async def insert_token(conn: Executor, token_hash: bytes, org_id: str) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (token_hash, organization_id) VALUES ($1, $2)", token_hash, org_id
    )


async def organization_for_token_hash(conn: Executor, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT o.id, o.plan FROM api_tokens t JOIN organizations o ON o.id = t.organization_id"
        " WHERE t.token_hash = $1",
        token_hash,
    )


async def lock_organization(conn: asyncpg.Connection, org_id: str) -> asyncpg.Record | None:
    """The row, locked until the transaction ends (plan changes serialize per org)."""
    return await conn.fetchrow(
        "SELECT id, plan FROM organizations WHERE id = $1 FOR UPDATE", org_id
    )


async def update_plan(conn: asyncpg.Connection, org_id: str, plan: str) -> None:
    await conn.execute(
        "UPDATE organizations SET plan = $2, updated_at = now() WHERE id = $1", org_id, plan
    )
