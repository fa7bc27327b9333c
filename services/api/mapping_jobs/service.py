"""Mapping jobs (seed 004): the producer calls that move a job and announce it.

A job is RUNNING until /complete or /fail moves it, once. The move and its outbox events
(mapping.completed or mapping.failed, plus export.ready when an export was produced) commit
in one transaction, and are published after it: every event exists exactly when its job
moved. The job's own webhook is an endpoint row of kind JOB_WEBHOOK tied to the job; the
dispatcher sends it only this job's events and the sender signs it with the org webhook
secret. Subscriptions, destinations, export webhooks and agent sinks hear the same events
through the same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_payloads import MappingCompletedData, MappingFailedData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.deliveries.recovery import recover_endpoint
from services.api.endpoints import job_webhooks
from services.api.endpoints import service as endpoints
from services.api.errors import ConflictError, NotFoundError, found
from services.api.events import service as events
from services.api.exports import service as exports
from services.api.exports.service import ExportFile
from services.api.mapping_jobs import repository
from services.api.mapping_jobs.schemas import CompleteIn, FailIn, MappingJobIn
from services.api.state import ApiState

RUNNING, COMPLETED = "RUNNING", "COMPLETED"


@dataclass(frozen=True)
class Completion:
    job: asyncpg.Record
    export_file_id: str | None


async def create_job(
    pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: MappingJobIn
) -> asyncpg.Record:
    url = None if body.webhook is None else body.webhook.url
    row = await job_webhooks.prepare(settings, plan, EndpointKind.JOB_WEBHOOK, url)
    job_id = new_id(IdPrefix.MAPPING_JOB)
    async with pool.acquire() as conn, conn.transaction():
        if body.agent_id is not None and not await repository.agent_in_org(
            conn, org_id, body.agent_id
        ):
            raise NotFoundError.of("agent", body.agent_id)
        await repository.insert(conn, job_id, org_id, body.agent_id)
        if row is not None:
            await job_webhooks.insert(
                conn, settings, org_id, EndpointKind.JOB_WEBHOOK, row, mapping_job_id=job_id
            )
        job = await repository.get(conn, org_id, job_id)
    assert job is not None
    return job


async def get_job(pool: asyncpg.Pool, org_id: str, job_id: str) -> asyncpg.Record:
    return found(
        await repository.get(pool, org_id, job_id), NotFoundError.of("mapping job", job_id)
    )


async def recover_webhook(state: ApiState, org_id: str, job_id: str, since: datetime) -> int:
    """Re-send the job webhook's PARKED, FAILED and DEAD deliveries since `since` through
    the one recover every door runs; 404 for an unknown job or one without a webhook."""
    job = await get_job(state.pool, org_id, job_id)
    webhook_id = job_webhooks.required(job["webhook_id"], "mapping job", job_id)
    return await recover_endpoint(state, org_id, webhook_id, since, kind=EndpointKind.JOB_WEBHOOK)


async def webhook_of(pool: asyncpg.Pool, job_id: str) -> str:
    """The job's webhook, whichever org's: operators name the job (`hookpost recover job_…`)."""
    job = found(await repository.get_any_org(pool, job_id), NotFoundError.of("mapping job", job_id))
    return job_webhooks.required(job["webhook_id"], "mapping job", job_id)


async def recent_jobs(pool: asyncpg.Pool, org_id: str, limit: int = 50) -> list[asyncpg.Record]:
    return await repository.recent(pool, org_id, limit)


async def _lock_in_state(
    conn: asyncpg.Connection, org_id: str, job_id: str, wanted: str, action: str
) -> asyncpg.Record:
    locked = found(
        await repository.lock(conn, org_id, job_id), NotFoundError.of("mapping job", job_id)
    )
    if locked["status"] != wanted:
        raise ConflictError(
            f"mapping job {job_id!r} is {locked['status']}: only a {wanted} job can {action}",
            status=locked["status"],
        )
    return locked


async def complete_job(
    pool: asyncpg.Pool,
    outbox: events.EventOutbox,
    settings: Settings,
    org_id: str,
    job_id: str,
    body: CompleteIn,
) -> Completion:
    stats = None if body.stats is None else body.stats.model_dump()
    results: list[dict[str, Any]] = body.results
    events.check_storable({"stats": stats, "results": results})
    recorded: list[asyncpg.Record] = []
    async with pool.acquire() as conn, conn.transaction():
        await _lock_in_state(conn, org_id, job_id, RUNNING, "complete")
        export = None
        if await endpoints.has_active_for_event(conn, org_id, EventType.EXPORT_READY):
            export = await exports.produce_in_transaction(conn, settings, org_id, job_id, results)
        done = await repository.complete(conn, job_id, stats, results)
        data = MappingCompletedData(
            mapping_job_id=job_id,
            row_count=stats["total"] if stats is not None else len(results),
            agent_id=done["agent_id"],
            stats=stats,
            export_file_id=None if export is None else export.file.id,
            completed_at=done["completed_at"],
        )
        recorded.append(
            await events.record_in_transaction(
                conn, org_id, EventType.MAPPING_COMPLETED, _wire(data), ordering_key=job_id
            )
        )
        if export is not None:
            recorded.append(export.event)
        job = await repository.get(conn, org_id, job_id)
    await events.publish_recorded(outbox, recorded)
    return Completion(job=job, export_file_id=None if export is None else export.file.id)


async def fail_job(
    pool: asyncpg.Pool,
    outbox: events.EventOutbox,
    org_id: str,
    job_id: str,
    body: FailIn,
) -> asyncpg.Record:
    error = body.error.model_dump()
    async with pool.acquire() as conn, conn.transaction():
        await _lock_in_state(conn, org_id, job_id, RUNNING, "fail")
        failed = await repository.fail(conn, job_id, error)
        data = MappingFailedData(
            mapping_job_id=job_id,
            error=error,
            agent_id=failed["agent_id"],
            failed_at=failed["failed_at"],
        )
        event = await events.record_in_transaction(
            conn, org_id, EventType.MAPPING_FAILED, _wire(data), ordering_key=job_id
        )
        job = await repository.get(conn, org_id, job_id)
    await events.publish_recorded(outbox, [event])
    return job


async def export_job(
    pool: asyncpg.Pool,
    outbox: events.EventOutbox,
    settings: Settings,
    org_id: str,
    job_id: str,
) -> ExportFile:
    """An export of a COMPLETED job's results, announced with export.ready (seed 000)."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock_in_state(conn, org_id, job_id, COMPLETED, "be exported")
        results = await repository.results(conn, job_id)
        export = await exports.produce_in_transaction(conn, settings, org_id, job_id, results)
    await events.publish_recorded(outbox, [export.event])
    return export.file


def _wire(data: Any) -> dict[str, Any]:
    wire: dict[str, Any] = data.model_dump(mode="json", by_alias=True)
    return wire
