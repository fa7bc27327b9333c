"""Door F (seed 004, Mappa report jobs): create a job, follow it, read its report; the
report engine's two producer calls. Every call is the org's (bearer token); another org's
job or report is a 404."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, status

from services.api.auth import Org
from services.api.deliveries.schemas import RecoverAccepted, RecoverIn
from services.api.reports import service
from services.api.reports.schemas import (
    ReportCompleted,
    ReportCompleteIn,
    ReportFailIn,
    ReportJobAccepted,
    ReportJobIn,
    ReportJobOut,
    ReportOut,
)
from services.api.routing import ApiRoute, MiB, max_body
from services.api.state import State

# A finished report is Markdown of a long recording, with whatever the engine adds.
COMPLETE_MAX_BODY = 8 * MiB

router = APIRouter(prefix="/reports", tags=["report jobs"], route_class=ApiRoute)


def _job(job: asyncpg.Record) -> ReportJobOut:
    # The row's columns are the response's fields, but for the job's id.
    return ReportJobOut.model_validate({**job, "job_id": job["id"]})


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=ReportJobAccepted)
async def create_job(body: ReportJobIn, state: State, org: Org) -> ReportJobAccepted:
    """Queue a report of `url` → 202 `{"jobId", "status": "queued"}`. With `webhook.url`, that
    URL receives the job's `report.completed` or `report.failed` (`mappa-signature`, retried
    after 5 s, 30 s, 5 min and 30 min)."""
    job = await service.create_job(state.pool, state.settings, org.id, org.plan, body)
    return ReportJobAccepted(job_id=job["id"], status=job["status"])


@router.get("/jobs/{report_job_id}", response_model=ReportJobOut)
async def get_job(report_job_id: str, state: State, org: Org) -> ReportJobOut:
    """The job's status (queued, completed, failed), its `reportId` or its `error`."""
    return _job(await service.get_job(state.pool, org.id, report_job_id))


@router.post(
    "/jobs/{report_job_id}/complete",
    response_model=ReportCompleted,
    dependencies=[max_body(COMPLETE_MAX_BODY)],
)
async def complete_job(
    report_job_id: str, body: ReportCompleteIn, state: State, org: Org
) -> ReportCompleted:
    """Producer call (the report engine): a queued job's `report {markdown, …}` (409 once
    the job has an outcome). Sends `report.completed` to the job's webhook."""
    report_id = await service.complete_job(state.pool, state.outbox, org.id, report_job_id, body)
    return ReportCompleted(job_id=report_job_id, report_id=report_id)


@router.post("/jobs/{report_job_id}/fail", response_model=ReportJobOut)
async def fail_job(report_job_id: str, body: ReportFailIn, state: State, org: Org) -> ReportJobOut:
    """Producer call: a queued job failed with `error {code, message}` (409 once the job has
    an outcome). Sends `report.failed` to the job's webhook."""
    return _job(await service.fail_job(state.pool, state.outbox, org.id, report_job_id, body))


@router.post(
    "/jobs/{report_job_id}/webhook/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverAccepted,
)
async def recover_webhook(
    report_job_id: str, body: RecoverIn, state: State, org: Org
) -> RecoverAccepted:
    """Re-send the job webhook's PARKED, FAILED and DEAD deliveries created since `since`,
    each once, with its original `id` → `{"deliveries": N}`. 404 when the job has no
    webhook; 409 while the webhook is INACTIVE (it answered 410 Gone)."""
    count = await service.recover_webhook(state, org.id, report_job_id, body.since)
    return RecoverAccepted(deliveries=count)


@router.get("/{report_id}", response_model=ReportOut)
async def get_report(report_id: str, state: State, org: Org) -> dict[str, Any]:
    """A completed job's report: `{id, jobId, markdown, createdAt, …}`."""
    return await service.get_report(state.pool, org.id, report_id)
