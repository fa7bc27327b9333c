"""All SQL for `events`, which doubles as the outbox (published_at NULL until confirmed)."""

from __future__ import annotations

from typing import Any

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "id, organization_id, type, data, idempotency_key, idempotency_fingerprint,"
    " target_endpoint_id, target_delivery_id, created_at, published_at, trace_context"
)


async def insert_event(
    conn: Executor,
    event_id: str,
    org_id: str,
    event_type: str,
    data: dict[str, Any],
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    target_endpoint_id: str | None = None,
    target_delivery_id: str | None = None,
    trace_context: dict[str, str] | None = None,
) -> asyncpg.Record | None:
    """The new row, or None when the org already used this idempotency key."""
    return await conn.fetchrow(
        "INSERT INTO events (id, organization_id, type, data, idempotency_key,"
        " idempotency_fingerprint, target_endpoint_id, target_delivery_id, trace_context)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
        event_id,
        org_id,
        event_type,
        data,
        idempotency_key,
        fingerprint,
        target_endpoint_id,
        target_delivery_id,
        trace_context,
    )


async def get_by_idempotency_key(conn: Executor, org_id: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM events WHERE organization_id = $1 AND idempotency_key = $2",
        org_id,
        key,
    )


async def get_event(conn: Executor, org_id: str, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM events WHERE id = $1 AND organization_id = $2", event_id, org_id
    )


async def mark_published(conn: Executor, event_ids: list[str]) -> None:
    if event_ids:
        await conn.execute(
            "UPDATE events SET published_at = now()"
            " WHERE id = ANY($1::text[]) AND published_at IS NULL",
            event_ids,
        )


async def claim_unpublished(
    conn: asyncpg.Connection, grace_s: float, limit: int
) -> list[asyncpg.Record]:
    """Unconfirmed events older than the grace period, locked for this relay's transaction.

    SKIP LOCKED lets several api replicas relay side by side without waiting on each other.
    """
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM events"
        " WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1::float8)"
        " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        grace_s,
        limit,
    )
