"""All SQL for the `endpoints` table, which every front door shares (one row per endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from libs.infra.db.pool import Executor

_COLUMNS = (
    "id, organization_id, kind, name, url_masked, events, status, deactivated_reason,"
    " signature_scheme, secret_masked, api_key_name, api_key_value_enc, additional_headers,"
    " config, agent_id, created_at, updated_at"
)


@dataclass(frozen=True)
class EndpointRow:
    """The columns a front door writes (secrets already encrypted by the service)."""

    name: str | None
    url_enc: bytes
    url_masked: str
    events: list[str]
    status: str
    deactivated_reason: str | None
    signature_scheme: str
    api_key_name: str | None
    api_key_value_enc: bytes | None
    additional_headers: dict[str, str]
    config: dict[str, Any]
    agent_id: str | None = None  # an agent results sink's agent (set on insert only)


# The columns of an EndpointRow that insert and replace both write, in _row_values' order.
_ROW_COLUMNS = (
    "name, url_enc, url_masked, events, status, deactivated_reason, signature_scheme,"
    " api_key_name, api_key_value_enc, additional_headers, config"
)


def _row_values(row: EndpointRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.url_enc,
        row.url_masked,
        row.events,
        row.status,
        row.deactivated_reason,
        row.signature_scheme,
        row.api_key_name,
        row.api_key_value_enc,
        row.additional_headers,
        row.config,
    )


async def lock_org_endpoints(conn: asyncpg.Connection, org_id: str) -> None:
    """Serialize quota checks of one org until the transaction ends (no two 10th endpoints)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('endpoints:' || $1))", org_id)


async def count_active(
    conn: Executor, org_id: str, kinds: list[str], exclude_id: str | None = None
) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM endpoints WHERE organization_id = $1 AND status = 'ACTIVE'"
        " AND kind = ANY($2::text[]) AND ($3::text IS NULL OR id <> $3)",
        org_id,
        kinds,
        exclude_id,
    )
    return count


async def has_active_for_event(conn: Executor, org_id: str, event_type: str) -> bool:
    """Whether any ACTIVE endpoint of the org subscribes to this event type (any kind)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE organization_id = $1"
        " AND status = 'ACTIVE' AND $2 = ANY (events))",
        org_id,
        event_type,
    )
    return found


async def insert(
    conn: Executor,
    endpoint_id: str,
    org_id: str,
    kind: str,
    row: EndpointRow,
    secret_enc: bytes | None,
    secret_masked: str | None,
    *,
    mapping_job_id: str | None = None,
) -> asyncpg.Record:
    """A NULL secret is only for kinds the sender signs with another secret (job webhooks:
    the org's webhook secret)."""
    return await conn.fetchrow(
        f"INSERT INTO endpoints (id, organization_id, kind, {_ROW_COLUMNS}, secret_enc,"
        " secret_masked, mapping_job_id, agent_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
        " $17, $18)"
        f" RETURNING {_COLUMNS}",
        endpoint_id,
        org_id,
        kind,
        *_row_values(row),
        secret_enc,
        secret_masked,
        mapping_job_id,
        row.agent_id,
    )


async def get(
    conn: Executor, org_id: str, endpoint_id: str, kind: str, for_update: bool = False
) -> asyncpg.Record | None:
    """The endpoint, or None when it does not exist, is another org's, or another kind."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM endpoints WHERE id = $1 AND organization_id = $2 AND kind = $3"
        + lock,
        endpoint_id,
        org_id,
        kind,
    )


async def stored_settings(
    conn: Executor, org_id: str, endpoint_id: str, kind: str
) -> asyncpg.Record | None:
    """The encrypted URL and API key value of the endpoint (for an edit that keeps them)."""
    return await conn.fetchrow(
        "SELECT url_enc, api_key_value_enc FROM endpoints"
        " WHERE id = $1 AND organization_id = $2 AND kind = $3",
        endpoint_id,
        org_id,
        kind,
    )


async def list_for_org(
    conn: Executor, org_id: str, kind: str, active_only: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM endpoints WHERE organization_id = $1 AND kind = $2"
        " AND (NOT $3 OR status = 'ACTIVE') ORDER BY created_at, id",
        org_id,
        kind,
        active_only,
    )


async def replace(
    conn: Executor, org_id: str, endpoint_id: str, kind: str, row: EndpointRow
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE endpoints SET ({_ROW_COLUMNS}, updated_at) ="
        " ($4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())"
        f" WHERE id = $1 AND organization_id = $2 AND kind = $3 RETURNING {_COLUMNS}",
        endpoint_id,
        org_id,
        kind,
        *_row_values(row),
    )


async def delete(conn: Executor, org_id: str, endpoint_id: str, kind: str) -> bool:
    """Deliveries and their attempts go with it (ON DELETE CASCADE)."""
    deleted = await conn.fetchval(
        "DELETE FROM endpoints WHERE id = $1 AND organization_id = $2 AND kind = $3 RETURNING id",
        endpoint_id,
        org_id,
        kind,
    )
    return deleted is not None


async def forget_failures(conn: Executor, endpoint_id: str) -> None:
    """Its failing period (migration 0009) ends: it is deleted, or its user re-activated it
    and it starts afresh rather than being disabled again at its next DEAD delivery."""
    await conn.execute("DELETE FROM endpoint_failures WHERE endpoint_id = $1", endpoint_id)


async def install_secret(
    conn: Executor,
    org_id: str,
    endpoint_id: str,
    kind: str,
    secret_enc: bytes,
    secret_masked: str,
    grace_s: int,
) -> asyncpg.Record | None:
    """Install a new secret; the old one stays valid for `grace_s` seconds (0: not at all).

    The row's id and `previous_secret_expires_at` (None when grace_s is 0), or None when
    there is no such endpoint. The expiry is computed by the database clock, the same clock
    the sender compares it with.
    """
    return await conn.fetchrow(
        "UPDATE endpoints SET"
        " previous_secret_enc = CASE WHEN $6::int > 0 THEN secret_enc END,"
        " previous_secret_expires_at ="
        " CASE WHEN $6::int > 0 THEN now() + make_interval(secs => $6::int) END,"
        " secret_enc = $4, secret_masked = $5, updated_at = now()"
        " WHERE id = $1 AND organization_id = $2 AND kind = $3"
        " RETURNING id, previous_secret_expires_at",
        endpoint_id,
        org_id,
        kind,
        secret_enc,
        secret_masked,
        grace_s,
    )


async def deactivate_for_plan(
    conn: Executor,
    org_id: str,
    disallowed_events: list[str],
    disallowed_kinds: list[str],
    reason: str,
) -> list[str]:
    """Set INACTIVE every ACTIVE endpoint holding a disallowed event or of a disallowed kind."""
    rows = await conn.fetch(
        "UPDATE endpoints SET status = 'INACTIVE', deactivated_reason = $4, updated_at = now()"
        " WHERE organization_id = $1 AND status = 'ACTIVE'"
        " AND (events && $2::text[] OR kind = ANY($3::text[])) RETURNING id",
        org_id,
        disallowed_events,
        disallowed_kinds,
        reason,
    )
    return sorted(row["id"] for row in rows)
