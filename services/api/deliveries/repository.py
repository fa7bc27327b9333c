"""All SQL for deliveries and their attempts (read by the API; written by the pipeline)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from libs.infra.db.pool import Executor


async def lock_for_retry(
    conn: asyncpg.Connection, org_id: str, delivery_id: str
) -> asyncpg.Record | None:
    """The delivery with its event, locked until the transaction ends."""
    return await conn.fetchrow(
        "SELECT d.id, d.event_id, d.endpoint_id, d.organization_id, d.status, d.attempt_count,"
        " d.ordering_key, e.type, e.data, e.created_at AS event_created_at"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.id = $1 AND d.organization_id = $2 FOR UPDATE OF d",
        delivery_id,
        org_id,
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


# ---------------------------------------------------------------- the dashboard's delivery log

_LOG_COLUMNS = (
    "d.id, d.event_id, e.type AS event_type, d.status, d.attempt_count, d.created_at,"
    " d.updated_at, d.last_attempt_at, d.next_attempt_at, d.endpoint_id,"
    " p.name AS endpoint_name, p.kind AS endpoint_kind"
)


def _log_query(
    org_id: str,
    endpoint_id: str | None,
    status: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, list[object]]:
    """The log's FROM/WHERE with only the filters given: a generic plan of `$n IS NULL OR …`
    could not use the (endpoint_id, created_at) and (organization_id, created_at, id)
    indexes, and a page must stay fast with a million deliveries."""
    params: list[object] = [org_id]
    where = ["d.organization_id = $1"]
    for column, value in (
        ("d.endpoint_id =", endpoint_id),
        ("d.status =", status),
        ("e.type =", event_type),
        ("d.created_at >=", since),
        ("d.created_at <", until),
    ):
        if value is not None:
            params.append(value)
            where.append(f"{column} ${len(params)}")
    sql = (
        f"SELECT {_LOG_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id"
        " JOIN endpoints p ON p.id = d.endpoint_id WHERE " + " AND ".join(where)
    )
    return sql, params


async def log_page(
    conn: Executor,
    org_id: str,
    *,
    endpoint_id: str | None = None,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[asyncpg.Record]:
    """Newest first; keyset-paged on (created_at, id): `before` is the last row of the
    previous page. Never OFFSET: a deep page costs what the first one does."""
    sql, params = _log_query(org_id, endpoint_id, status, event_type, since, until)
    if before is not None:
        params.extend(before)
        sql += f" AND (d.created_at, d.id) < (${len(params) - 1}, ${len(params)})"
    params.append(limit)
    sql += f" ORDER BY d.created_at DESC, d.id DESC LIMIT ${len(params)}"
    return await conn.fetch(sql, *params)


async def delivery_detail(conn: Executor, org_id: str, delivery_id: str) -> asyncpg.Record | None:
    """A delivery with its event and what its endpoint adds to a request (no secrets)."""
    return await conn.fetchrow(
        f"SELECT {_LOG_COLUMNS}, e.data, e.created_at AS event_created_at, p.url_masked,"
        " p.signature_scheme, p.api_key_name, p.additional_headers"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
        " JOIN endpoints p ON p.id = d.endpoint_id WHERE d.id = $1 AND d.organization_id = $2",
        delivery_id,
        org_id,
    )


async def attempts_with_responses(
    conn: Executor, delivery_id: str, event_id: str
) -> list[asyncpg.Record]:
    # event_id: the partition key (migration 0007), so one day's partition is read
    return await conn.fetch(
        "SELECT id, attempt_number, attempted_at, http_status, error, duration_ms, succeeded,"
        " response_excerpt FROM delivery_attempts WHERE delivery_id = $1 AND event_id = $2"
        " ORDER BY attempt_number",
        delivery_id,
        event_id,
    )


async def hourly_outcomes(
    conn: Executor, org_id: str, endpoint_id: str, since: datetime
) -> list[asyncpg.Record]:
    """Attempts per hour since `since`: succeeded and failed. Deliveries older than a week
    are left out so the endpoint's (endpoint_id, created_at) index bounds the scan."""
    return await conn.fetch(
        "SELECT date_trunc('hour', a.attempted_at) AS hour,"
        " count(*) FILTER (WHERE a.succeeded) AS succeeded,"
        " count(*) FILTER (WHERE NOT a.succeeded) AS failed"
        " FROM delivery_attempts a JOIN deliveries d"
        " ON d.id = a.delivery_id AND d.event_id = a.event_id"
        " WHERE d.endpoint_id = $1 AND d.organization_id = $2 AND a.attempted_at >= $3"
        " AND d.created_at >= $3 - interval '7 days'"
        " GROUP BY 1 ORDER BY 1",
        endpoint_id,
        org_id,
        since,
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


async def reactivate(conn: Executor, endpoint_id: str) -> None:
    """ACTIVE again (the engines hear of it through the config-change trigger)."""
    await conn.execute(
        "UPDATE endpoints SET status = 'ACTIVE', deactivated_reason = NULL, updated_at = now()"
        " WHERE id = $1 AND status = 'INACTIVE'",
        endpoint_id,
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
        " d.ordering_key, e.type, e.data, e.created_at AS event_created_at"
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
    """PENDING again, each with a new retry schedule from its next attempt. With each
    one's event id: the history is partitioned by it (0007)."""
    await conn.execute(
        "UPDATE deliveries SET status = 'PENDING', schedule_start = attempt_count + 1,"
        " next_attempt_at = now(), updated_at = now()"
        " WHERE (id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " AND event_id = ANY($2::text[])",
        delivery_ids,
        event_ids,
    )
