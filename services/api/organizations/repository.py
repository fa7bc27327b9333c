"""All SQL for organizations and their API tokens."""

from __future__ import annotations

import asyncpg

from libs.infra.db.pool import Executor


async def insert_organization(
    conn: Executor,
    org_id: str,
    name: str,
    plan: str,
    webhook_secret_enc: bytes | None = None,
    webhook_secret_masked: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO organizations (id, name, plan, webhook_secret_enc, webhook_secret_masked)"
        " VALUES ($1, $2, $3, $4, $5)",
        org_id,
        name,
        plan,
        webhook_secret_enc,
        webhook_secret_masked,
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


async def webhook_secret_masked(conn: Executor, org_id: str) -> str | None:
    masked: str | None = await conn.fetchval(
        "SELECT webhook_secret_masked FROM organizations WHERE id = $1", org_id
    )
    return masked


async def webhook_secret_enc(conn: Executor, org_id: str) -> bytes | None:
    blob: bytes | None = await conn.fetchval(
        "SELECT webhook_secret_enc FROM organizations WHERE id = $1", org_id
    )
    return blob


async def rotate_webhook_secret(
    conn: Executor, org_id: str, secret_enc: bytes, secret_masked: str, grace_s: int
) -> asyncpg.Record:
    """The new secret in; the one it replaces keeps signing for `grace_s` seconds (only that
    one: a second rotation inside a window drops the older secret)."""
    return await conn.fetchrow(
        "UPDATE organizations SET"
        " previous_webhook_secret_enc = CASE WHEN $4::int > 0 THEN webhook_secret_enc END,"
        " previous_webhook_secret_expires_at ="
        "   CASE WHEN $4::int > 0 THEN now() + make_interval(secs => $4::int) END,"
        " webhook_secret_enc = $2, webhook_secret_masked = $3, updated_at = now()"
        " WHERE id = $1 RETURNING previous_webhook_secret_expires_at",
        org_id,
        secret_enc,
        secret_masked,
        grace_s,
    )


async def store_webhook_secret(
    conn: Executor, org_id: str, secret_enc: bytes, secret_masked: str, *, replace: bool
) -> None:
    """`replace=False` only gives a secret to an org that predates webhook secrets (a
    concurrent caller's secret wins); `replace=True` rotates it."""
    await conn.execute(
        "UPDATE organizations SET webhook_secret_enc = $2, webhook_secret_masked = $3,"
        " updated_at = now() WHERE id = $1 AND ($4 OR webhook_secret_enc IS NULL)",
        org_id,
        secret_enc,
        secret_masked,
        replace,
    )
