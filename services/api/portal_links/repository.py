"""All SQL for portal links (dashboard_portal_links, migration 0011)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from libs.infra.db.pool import Executor

_COLUMNS = "id, organization_id, frame_origin, created_by, expires_at, revoked_at, created_at"


async def insert(
    conn: Executor,
    link_id: str,
    org_id: str,
    token_hash: bytes,
    frame_origin: str | None,
    created_by: str,
    expires_at: datetime,
) -> asyncpg.Record:
    record: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO dashboard_portal_links"
        " (id, organization_id, token_hash, frame_origin, created_by, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        link_id,
        org_id,
        token_hash,
        frame_origin,
        created_by,
        expires_at,
    )
    return record


async def usable_by_token_hash(conn: Executor, token_hash: bytes) -> asyncpg.Record | None:
    """The link of this token if it is neither revoked nor expired."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM dashboard_portal_links"
        " WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
        token_hash,
    )


async def revoke(conn: Executor, org_id: str, link_id: str) -> bool:
    """Revoke the link (one revoked before keeps its time); False: the org has no such link."""
    revoked = await conn.fetchval(
        "UPDATE dashboard_portal_links SET revoked_at = COALESCE(revoked_at, now())"
        " WHERE id = $1 AND organization_id = $2 RETURNING id",
        link_id,
        org_id,
    )
    return revoked is not None


async def list_for_org(conn: Executor, org_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM dashboard_portal_links WHERE organization_id = $1"
        " ORDER BY created_at DESC LIMIT 100",
        org_id,
    )


async def organization_exists(conn: Executor, org_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)", org_id
    )
    return found
