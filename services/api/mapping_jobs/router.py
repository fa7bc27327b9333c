from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, status

from services.api.auth import Org
from services.api.deliveries.schemas import RecoverAccepted, RecoverIn
from services.api.mapping_jobs import service
from services.api.mapping_jobs.schemas import (
    CompleteIn,
    ExportQueued,
    FailIn,
    JobCompleted,
    JobWebhookOut,
    MappingJobIn,
    MappingJobOut,
)
from services.api.routing import ApiRoute, MiB, max_body
from services.api.state import State

# A completion carries the job's full results: agent sinks push up to 10 MiB of them
# (HOOKPOST_SINK_PAYLOAD_CAP_BYTES), so the body may be larger than other requests.
COMPLETE_MAX_BODY = 16 * MiB

router = APIRouter(prefix="/mapping-jobs", tags=["mapping jobs"], route_class=ApiRoute)


def _fields(job: asyncpg.Record) -> dict[str, Any]:
    webhook = None
    if job["webhook_id"] is not None:
        webhook = JobWebhookOut(id=job["webhook_id"], url=job["webhook_url_masked"])
    return {
        "job_id": job["id"],
        "status": job["status"],
        "agent_id": job["agent_id"],
        "webhook": webhook,
        "stats": job["stats"],
        "error": job["error"],
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "completed_at": job["completed_at"],
        "failed_at": job["failed_at"],
    }


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MappingJobOut)
async def create_job(body: MappingJobIn, state: State, org: Org) -> MappingJobOut:
    """Start a job (RUNNING) → `{"jobId", …}`. With `webhook.url`, that URL receives this
    job's `mapping.completed` or `mapping.failed`, signed with the org webhook secret and
    retried 5 times (5 s, 30 s, 5 min, 30 min)."""
    job = await service.create_job(state.pool, state.settings, org.id, org.plan, body)
    return MappingJobOut(**_fields(job))


@router.get("/{job_id}", response_model=MappingJobOut)
async def get_job(job_id: str, state: State, org: Org) -> MappingJobOut:
    """The job's status, stats or error, and its webhook (URL masked)."""
    return MappingJobOut(**_fields(await service.get_job(state.pool, org.id, job_id)))


@router.post(
    "/{job_id}/complete", response_model=JobCompleted, dependencies=[max_body(COMPLETE_MAX_BODY)]
)
async def complete_job(job_id: str, body: CompleteIn, state: State, org: Org) -> JobCompleted:
    """Producer call: a RUNNING job completed with `stats` and `results` (409 otherwise).

    Emits `mapping.completed` (and, when an ACTIVE endpoint wants `export.ready`, renders an
    export in the org's format and emits `export.ready`). Bodies up to ~10 MiB of results."""
    done = await service.complete_job(
        state.pool, state.outbox, state.settings, org.id, job_id, body
    )
    return JobCompleted(**_fields(done.job), export_file_id=done.export_file_id)


@router.post("/{job_id}/fail", response_model=MappingJobOut)
async def fail_job(job_id: str, body: FailIn, state: State, org: Org) -> MappingJobOut:
    """Producer call: a RUNNING job failed with `error {code, message}` (409 otherwise).
    Emits `mapping.failed`."""
    job = await service.fail_job(state.pool, state.outbox, org.id, job_id, body)
    return MappingJobOut(**_fields(job))


@router.post("/{job_id}/exports", status_code=status.HTTP_202_ACCEPTED, response_model=ExportQueued)
async def export_job(job_id: str, state: State, org: Org) -> ExportQueued:
    """Export a COMPLETED job's results in the org's format (409 otherwise) and deliver
    `export.ready` to every active export webhook."""
    file = await service.export_job(state.pool, state.outbox, state.settings, org.id, job_id)
    return ExportQueued(
        export_file_id=file.id,
        mapping_job_id=file.mapping_job_id,
        format=file.format.value,
        file_size=file.file_size,
        row_count=file.row_count,
        download_url=file.download_url,
    )


@router.post(
    "/{job_id}/webhook/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverAccepted,
)
async def recover_webhook(job_id: str, body: RecoverIn, state: State, org: Org) -> RecoverAccepted:
    """Re-send the job webhook's PARKED, FAILED and DEAD deliveries created since `since`,
    each once, with its original eventId → `{"deliveries": N}`. 404 when the job has no
    webhook; 409 while the webhook is INACTIVE (it answered 410 Gone)."""
    count = await service.recover_webhook(state, org.id, job_id, body.since)
    return RecoverAccepted(deliveries=count)
