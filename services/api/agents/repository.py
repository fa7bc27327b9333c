"""All SQL of the agents domain: agents and their rules, a job's results, a sink's syncs.

The sinks themselves are rows of the shared `endpoints` table, written by the endpoints
domain; what is read here about them is their delivery history as the seed's
`agent_data_source_sync` (one row per attempt).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.infra.db.pool import Executor

_COLUMNS = "id, organization_id, name, workspace_id, status, rules, created_at, updated_at"


async def insert(
    conn: Executor, agent_id: str, org_id: str, name: str, workspace_id: str
) -> asyncpg.Record:
    """A new agent; its rules are the table's default (outbound push off, 2 retries)."""
    return await conn.fetchrow(
        "INSERT INTO agents (id, organization_id, name, workspace_id) VALUES ($1, $2, $3, $4)"
        f" RETURNING {_COLUMNS}",
        agent_id,
        org_id,
        name,
        workspace_id,
    )


async def get(conn: Executor, org_id: str, agent_id: str) -> asyncpg.Record | None:
    """The agent, or None when it does not exist or is another org's."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM agents WHERE id = $1 AND organization_id = $2",
        agent_id,
        org_id,
    )


async def list_for_org(conn: Executor, org_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM agents WHERE organization_id = $1 ORDER BY created_at, id",
        org_id,
    )


async def update(
    conn: Executor, org_id: str, agent_id: str, name: str | None, status: str | None
) -> asyncpg.Record | None:
    """Change the given fields (None: keep); None when there is no such agent."""
    return await conn.fetchrow(
        "UPDATE agents SET name = COALESCE($3, name), status = COALESCE($4, status),"
        " updated_at = now() WHERE id = $1 AND organization_id = $2"
        f" RETURNING {_COLUMNS}",
        agent_id,
        org_id,
        name,
        status,
    )


async def set_rules(
    conn: Executor, org_id: str, agent_id: str, rules: dict[str, Any]
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE agents SET rules = $3, updated_at = now()"
        f" WHERE id = $1 AND organization_id = $2 RETURNING {_COLUMNS}",
        agent_id,
        org_id,
        rules,
    )


async def delete(conn: Executor, org_id: str, agent_id: str) -> bool:
    """Its sinks (and their deliveries) go with it; its jobs stay, without an agent."""
    deleted = await conn.fetchval(
        "DELETE FROM agents WHERE id = $1 AND organization_id = $2 RETURNING id",
        agent_id,
        org_id,
    )
    return deleted is not None


async def job_results(
    conn: Executor, org_id: str, agent_id: str, job_id: str
) -> asyncpg.Record | None:
    """A job of this agent with its results as stored JSON text (served without parsing)."""
    return await conn.fetchrow(
        "SELECT id, agent_id, status, COALESCE(results::text, '[]') AS results_json"
        " FROM mapping_jobs WHERE id = $1 AND organization_id = $2 AND agent_id = $3",
        job_id,
        org_id,
        agent_id,
    )


async def syncs(conn: Executor, org_id: str, endpoint_id: str, limit: int) -> list[asyncpg.Record]:
    """Every attempt to push to a sink, newest first, with the job it pushed."""
    return await conn.fetch(
        "SELECT a.id AS attempt_id, d.id AS delivery_id, ev.type AS event_type,"
        " COALESCE(ev.data ->> 'mappingJobId', ev.data #>> '{sinkPayload,jobId}') AS job_id,"
        " a.attempt_number, a.attempted_at, a.http_status, a.succeeded, a.error,"
        " a.duration_ms, d.status AS delivery_status"
        " FROM deliveries d"
        " JOIN delivery_attempts a ON a.delivery_id = d.id AND a.event_id = d.event_id"
        " JOIN events ev ON ev.id = d.event_id"
        " WHERE d.endpoint_id = $1 AND d.organization_id = $2"
        " ORDER BY a.attempted_at DESC, a.attempt_number DESC LIMIT $3",
        endpoint_id,
        org_id,
        limit,
    )
