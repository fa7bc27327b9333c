"""All SQL for dashboard sessions (dashboard_sessions, migration 0011)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool


async def insert_session(
    conn: Executor,
    id_hash: bytes,
    org_id: str,
    csrf_token: str,
    portal_link_id: str | None,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO dashboard_sessions"
        " (id_hash, organization_id, csrf_token, portal_link_id, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        id_hash,
        org_id,
        csrf_token,
        portal_link_id,
        expires_at,
    )


async def live_session(conn: Executor, id_hash: bytes) -> asyncpg.Record | None:
    """The session with its org, unless it expired or the portal link that opened it did
    (or was revoked)."""
    return await conn.fetchrow(
        "SELECT s.organization_id, s.csrf_token, s.portal_link_id, s.expires_at,"
        " o.name AS organization_name, o.plan, l.frame_origin"
        " FROM dashboard_sessions s JOIN organizations o ON o.id = s.organization_id"
        " LEFT JOIN dashboard_portal_links l ON l.id = s.portal_link_id"
        " WHERE s.id_hash = $1 AND s.expires_at > now()"
        " AND (s.portal_link_id IS NULL OR (l.revoked_at IS NULL AND l.expires_at > now()))",
        id_hash,
    )


async def delete_session(conn: Executor, id_hash: bytes) -> None:
    await conn.execute("DELETE FROM dashboard_sessions WHERE id_hash = $1", id_hash)


async def delete_expired(conn: Executor) -> None:
    await conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= now()")
