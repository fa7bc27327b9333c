"""Report jobs (seed 004, door F): a job is queued until the report engine's producer call
completes or fails it, once; the move and its outcome event commit together.

The job's own webhook is an endpoint row of kind REPORT_WEBHOOK, made by the same endpoints
domain as every door (URL safety, masking, encryption, audit) and signed with the org
webhook secret. It subscribes to nothing: the outcome event names it as its target, so the
dispatcher sends that job's event to that webhook alone, through the one pipeline (retries,
attempts log, DEAD). What goes on the wire is the seed's own: libs/delivery/payloads.py
(the envelope with `id` = the event id) and libs/delivery/signatures.py (`mappa-signature`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_payloads import ReportCompletedData, ReportFailedData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra import crypto
from libs.infra.settings import Settings
from services.api.deliveries.recovery import recover_endpoint
from services.api.endpoints import job_webhooks
from services.api.errors import ConflictError, NotFoundError, found
from services.api.events import service as events
from services.api.reports import repository
from services.api.reports.schemas import ReportCompleteIn, ReportFailIn, ReportJobIn
from services.api.state import ApiState

QUEUED = "queued"


async def create_job(
    pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: ReportJobIn
) -> asyncpg.Record:
    url = None if body.webhook is None else body.webhook.url
    row = await job_webhooks.prepare(settings, plan, EndpointKind.REPORT_WEBHOOK, url)
    output = body.output.model_dump(mode="json", by_alias=True)
    target = body.target.model_dump(mode="json", by_alias=True)
    events.check_storable({"output": output, "target": target})
    job_id = new_id(IdPrefix.REPORT_JOB)
    async with pool.acquire() as conn, conn.transaction():
        webhook_id = None
        if row is not None:
            created = await job_webhooks.insert(
                conn, settings, org_id, EndpointKind.REPORT_WEBHOOK, row
            )
            webhook_id = created.endpoint.id
        await repository.insert_job(
            conn, job_id, org_id, crypto.encrypt(body.url), output, target, webhook_id
        )
        job = await repository.get_job(conn, org_id, job_id)
    assert job is not None
    return job


async def recent_jobs(pool: asyncpg.Pool, org_id: str, limit: int = 50) -> list[asyncpg.Record]:
    return await repository.recent_jobs(pool, org_id, limit)


async def get_job(pool: asyncpg.Pool, org_id: str, job_id: str) -> asyncpg.Record:
    return found(
        await repository.get_job(pool, org_id, job_id), NotFoundError.of("report job", job_id)
    )


async def recover_webhook(state: ApiState, org_id: str, job_id: str, since: datetime) -> int:
    """Re-send the job webhook's PARKED, FAILED and DEAD deliveries since `since` through
    the one recover every door runs; 404 for an unknown job or one without a webhook."""
    job = await get_job(state.pool, org_id, job_id)
    webhook_id = job_webhooks.required(job["webhook_endpoint_id"], "report job", job_id)
    return await recover_endpoint(
        state, org_id, webhook_id, since, kind=EndpointKind.REPORT_WEBHOOK
    )


async def webhook_of(pool: asyncpg.Pool, job_id: str) -> str:
    """The job's webhook, whichever org's: operators name the job (`hookpost recover rjob_…`);
    the seed's job responses never show the webhook's own id."""
    job = found(
        await repository.get_job_any_org(pool, job_id), NotFoundError.of("report job", job_id)
    )
    return job_webhooks.required(job["webhook_endpoint_id"], "report job", job_id)


async def _lock_queued(conn: asyncpg.Connection, org_id: str, job_id: str) -> asyncpg.Record:
    job = found(
        await repository.lock_job(conn, org_id, job_id), NotFoundError.of("report job", job_id)
    )
    if job["status"] != QUEUED:
        raise ConflictError(
            f"report job {job_id!r} is already {job['status']}", status=job["status"]
        )
    return job


async def _announce(
    conn: asyncpg.Connection, job: asyncpg.Record, event_type: EventType, data: Any
) -> asyncpg.Record | None:
    """The outcome event, addressed to the job's webhook; none when the job has none."""
    if job["webhook_endpoint_id"] is None:
        return None
    return await events.record_in_transaction(
        conn,
        job["organization_id"],
        event_type,
        data.model_dump(mode="json", by_alias=True),
        target_endpoint_id=job["webhook_endpoint_id"],
        ordering_key=job["id"],  # a job's events carry its id (SPEC §4, ordered delivery)
    )


async def complete_job(
    pool: asyncpg.Pool,
    outbox: events.EventOutbox,
    org_id: str,
    job_id: str,
    body: ReportCompleteIn,
) -> str:
    """The report engine's call: store the report, complete the job; the report's id."""
    fields = body.report.model_dump(mode="json", by_alias=True)
    markdown = fields.pop("markdown")
    extra = {k: v for k, v in fields.items() if k not in ("id", "jobId", "createdAt")}
    events.check_storable(extra)
    report_id = new_id(IdPrefix.REPORT)
    async with pool.acquire() as conn, conn.transaction():
        job = await _lock_queued(conn, org_id, job_id)
        await repository.insert_report(conn, report_id, org_id, job_id, markdown, extra)
        await repository.complete_job(conn, job_id, report_id)
        data = ReportCompletedData(job_id=job_id, report_id=report_id)
        event = await _announce(conn, job, EventType.REPORT_COMPLETED, data)
    await events.publish_recorded(outbox, [event] if event is not None else [])
    return report_id


async def fail_job(
    pool: asyncpg.Pool,
    outbox: events.EventOutbox,
    org_id: str,
    job_id: str,
    body: ReportFailIn,
) -> asyncpg.Record:
    error = body.error.model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        job = await _lock_queued(conn, org_id, job_id)
        failed = await repository.fail_job(conn, job_id, error)
        data = ReportFailedData.model_validate({"jobId": job_id, "error": error})
        event = await _announce(conn, job, EventType.REPORT_FAILED, data)
    await events.publish_recorded(outbox, [event] if event is not None else [])
    return failed


async def get_report(pool: asyncpg.Pool, org_id: str, report_id: str) -> dict[str, Any]:
    report = found(
        await repository.get_report(pool, org_id, report_id),
        NotFoundError.of("report", report_id),
    )
    return {
        **(report["extra"] or {}),
        "id": report["id"],
        "jobId": report["job_id"],
        "markdown": report["markdown"],
        "createdAt": report["created_at"],
    }
