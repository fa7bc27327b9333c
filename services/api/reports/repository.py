"""All SQL for report jobs and their reports (seed 004, door F)."""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.infra.db.pool import Executor

_COLUMNS = (
    "id, organization_id, status, report_id, error, webhook_endpoint_id, created_at, updated_at"
)
_JOB = f"SELECT {_COLUMNS} FROM report_jobs"


async def insert_job(
    conn: Executor,
    job_id: str,
    org_id: str,
    source_url_enc: bytes,
    output: dict[str, Any],
    target: dict[str, Any],
    webhook_endpoint_id: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO report_jobs (id, organization_id, source_url_enc, output, target,"
        " webhook_endpoint_id) VALUES ($1, $2, $3, $4, $5, $6)",
        job_id,
        org_id,
        source_url_enc,
        output,
        target,
        webhook_endpoint_id,
    )


async def recent_jobs(conn: Executor, org_id: str, limit: int) -> list[asyncpg.Record]:
    """The org's newest report jobs, each with its webhook's masked URL, status and why it is
    INACTIVE (the dashboard's Jobs page)."""
    return await conn.fetch(
        "SELECT r.*, w.url_masked AS webhook_url_masked, w.status AS webhook_status,"
        " w.deactivated_reason AS webhook_deactivated_reason"
        f" FROM ({_JOB} WHERE organization_id = $1 ORDER BY created_at DESC LIMIT $2) r"
        " LEFT JOIN endpoints w ON w.id = r.webhook_endpoint_id ORDER BY r.created_at DESC",
        org_id,
        limit,
    )


async def get_job(conn: Executor, org_id: str, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_JOB} WHERE id = $1 AND organization_id = $2", job_id, org_id)


async def get_job_any_org(conn: Executor, job_id: str) -> asyncpg.Record | None:
    """The job, whichever org's (an operator names the job alone)."""
    return await conn.fetchrow(f"{_JOB} WHERE id = $1", job_id)


async def lock_job(conn: asyncpg.Connection, org_id: str, job_id: str) -> asyncpg.Record | None:
    """The job, locked until the transaction ends: one outcome wins, the second is a 409."""
    return await conn.fetchrow(
        f"{_JOB} WHERE id = $1 AND organization_id = $2 FOR UPDATE", job_id, org_id
    )


async def insert_report(
    conn: Executor, report_id: str, org_id: str, job_id: str, markdown: str, extra: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO reports (id, organization_id, job_id, markdown, extra)"
        " VALUES ($1, $2, $3, $4, $5)",
        report_id,
        org_id,
        job_id,
        markdown,
        extra,
    )


async def complete_job(conn: Executor, job_id: str, report_id: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE report_jobs SET status = 'completed', report_id = $2, updated_at = now()"
        f" WHERE id = $1 RETURNING {_COLUMNS}",
        job_id,
        report_id,
    )


async def fail_job(conn: Executor, job_id: str, error: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE report_jobs SET status = 'failed', error = $2, updated_at = now()"
        f" WHERE id = $1 RETURNING {_COLUMNS}",
        job_id,
        error,
    )


async def get_report(conn: Executor, org_id: str, report_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, job_id, markdown, extra, created_at FROM reports"
        " WHERE id = $1 AND organization_id = $2",
        report_id,
        org_id,
    )
