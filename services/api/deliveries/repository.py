"""All SQL for deliveries and their attempts (read by the API; written by the pipeline)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool


async def lock_for_retry(
    conn: asyncpg.Connection, org_id: str, delivery_id: str
) -> asyncpg.Record | None:
    """The delivery with its event, locked until the transaction ends."""
    return await conn.fetchrow(
        "SELECT d.id, d.event_id, d.endpoint_id, d.organization_id, d.status, d.attempt_count,"
        " e.type, e.data, e.created_at AS event_created_at"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.id = $1 AND d.organization_id = $2 FOR UPDATE OF d",
        delivery_id,
        org_id,
    )


async def reopen(conn: asyncpg.Connection, delivery_id: str, schedule_start: int) -> None:
    """PENDING again, with a new retry schedule starting at attempt `schedule_start`."""
    await conn.execute(
        "UPDATE deliveries SET status = 'PENDING', schedule_start = $2, next_attempt_at = now(),"
        " updated_at = now() WHERE id = $1",
        delivery_id,
        schedule_start,
    )


async def list_for_endpoint(
    conn: Executor, org_id: str, endpoint_id: str, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT d.id, d.event_id, e.type AS event_type, d.status, d.attempt_count, d.created_at,"
        " d.updated_at, d.last_attempt_at, d.next_attempt_at"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.endpoint_id = $1 AND d.organization_id = $2"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
        endpoint_id,
        org_id,
        limit,
    )


async def attempts_for(conn: Executor, delivery_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, delivery_id, attempt_number, attempted_at, http_status, error, duration_ms,"
        " succeeded FROM delivery_attempts WHERE delivery_id = ANY($1::text[])"
        " ORDER BY delivery_id, attempt_number",
        delivery_ids,
    )


async def recover_target(
    conn: Executor, org_id: str, endpoint_id: str, kind: str | None
) -> asyncpg.Record | None:
    """The endpoint a recover names (of this org, and of this kind when given)."""
    return await conn.fetchrow(
        "SELECT id, kind, status, deactivated_reason FROM endpoints"
        " WHERE id = $1 AND organization_id = $2 AND ($3::text IS NULL OR kind = $3)",
        endpoint_id,
        org_id,
        kind,
    )


async def endpoint_organization(conn: Executor, endpoint_id: str) -> str | None:
    org_id: str | None = await conn.fetchval(
        "SELECT organization_id FROM endpoints WHERE id = $1", endpoint_id
    )
    return org_id


async def claim_recoverable(
    conn: asyncpg.Connection,
    org_id: str,
    endpoint_id: str,
    statuses: list[str],
    since: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """A batch of the endpoint's deliveries in `statuses` created since `since`, oldest first,
    with their events, locked until the transaction ends (rows another recover holds are
    skipped: that one re-sends them). Through the deliveries_recoverable index (0009)."""
    return await conn.fetch(
        "SELECT d.id, d.event_id, d.endpoint_id, d.organization_id, d.status, d.attempt_count,"
        " e.type, e.data, e.created_at AS event_created_at"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.endpoint_id = $1 AND d.organization_id = $2 AND d.status = ANY($3::text[])"
        " AND d.created_at >= $4"
        " ORDER BY d.created_at, d.id LIMIT $5 FOR UPDATE OF d SKIP LOCKED",
        endpoint_id,
        org_id,
        statuses,
        since,
        limit,
    )


async def reopen_many(
    conn: asyncpg.Connection, delivery_ids: list[str], event_ids: list[str]
) -> None:
    """PENDING again, each with a new retry schedule from its next attempt (as `reopen`).
    With each one's event id: the history is partitioned by it (0007)."""
    await conn.execute(
        "UPDATE deliveries SET status = 'PENDING', schedule_start = attempt_count + 1,"
        " next_attempt_at = now(), updated_at = now()"
        " WHERE (id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " AND event_id = ANY($2::text[])",
        delivery_ids,
        event_ids,
    )
