"""All SQL for the audit log."""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.infra.db.pool import Executor


async def insert_entry(
    conn: Executor, org_id: str | None, action: str, details: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (organization_id, action, details) VALUES ($1, $2, $3)",
        org_id,
        action,
        details,
    )


async def list_entries(conn: Executor, org_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, action, details, created_at, updated_at FROM audit_log"
        " WHERE organization_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        org_id,
        limit,
    )
