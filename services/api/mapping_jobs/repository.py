"""All SQL for mapping jobs (and the one look-up of an agent a new job names)."""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.infra.db.pool import Executor

# Everything but `results`, which can be megabytes: only exports read it.
_COLUMNS = (
    "j.id, j.organization_id, j.agent_id, j.status, j.stats, j.error, j.completed_at,"
    " j.failed_at, j.created_at, j.updated_at"
)
# The job's own webhook (at most one), as responses may show it; its status and why it is
# INACTIVE for the dashboard's Jobs page.
_WITH_WEBHOOK = (
    f"SELECT {_COLUMNS}, w.id AS webhook_id, w.url_masked AS webhook_url_masked,"
    " w.status AS webhook_status, w.deactivated_reason AS webhook_deactivated_reason"
    " FROM mapping_jobs j LEFT JOIN endpoints w"
    " ON w.mapping_job_id = j.id AND w.kind = 'JOB_WEBHOOK'"
)


async def agent_in_org(conn: Executor, org_id: str, agent_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1 AND organization_id = $2)",
        agent_id,
        org_id,
    )
    return found


async def insert(conn: Executor, job_id: str, org_id: str, agent_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id) VALUES ($1, $2, $3)",
        job_id,
        org_id,
        agent_id,
    )


async def get(conn: Executor, org_id: str, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"{_WITH_WEBHOOK} WHERE j.id = $1 AND j.organization_id = $2", job_id, org_id
    )


async def get_any_org(conn: Executor, job_id: str) -> asyncpg.Record | None:
    """The job with its webhook, whichever org's (an operator names the job alone)."""
    return await conn.fetchrow(f"{_WITH_WEBHOOK} WHERE j.id = $1", job_id)


async def recent(conn: Executor, org_id: str, limit: int) -> list[asyncpg.Record]:
    """The org's newest jobs with their webhooks (the dashboard's Mapping jobs page)."""
    return await conn.fetch(
        f"{_WITH_WEBHOOK} WHERE j.organization_id = $1 ORDER BY j.created_at DESC LIMIT $2",
        org_id,
        limit,
    )


async def lock(conn: asyncpg.Connection, org_id: str, job_id: str) -> asyncpg.Record | None:
    """The job's status and agent, locked until the transaction ends (one transition wins)."""
    return await conn.fetchrow(
        "SELECT id, status, agent_id FROM mapping_jobs WHERE id = $1 AND organization_id = $2"
        " FOR UPDATE",
        job_id,
        org_id,
    )


async def results(conn: Executor, job_id: str) -> list[dict[str, Any]]:
    stored = await conn.fetchval("SELECT results FROM mapping_jobs WHERE id = $1", job_id)
    return list(stored or [])


async def complete(
    conn: Executor, job_id: str, stats: dict[str, Any] | None, results: list[dict[str, Any]]
) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE mapping_jobs SET status = 'COMPLETED', stats = $2, results = $3,"
        " completed_at = now(), updated_at = now() WHERE id = $1"
        " RETURNING id, agent_id, completed_at",
        job_id,
        stats,
        results,
    )


async def fail(conn: Executor, job_id: str, error: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE mapping_jobs SET status = 'FAILED', error = $2, failed_at = now(),"
        " updated_at = now() WHERE id = $1 RETURNING id, agent_id, failed_at",
        job_id,
        error,
    )
