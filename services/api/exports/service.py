"""Export files (seed 000): render a job's results in the org's format, store the file, and
write the `export.ready` event that announces it, inside the caller's transaction.

Delivery is the one pipeline's: export.ready reaches every ACTIVE endpoint subscribed to it
(export webhooks, and subscriptions or destinations that chose it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from libs.domain.event_payloads import ExportReadyData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id
from libs.infra.settings import Settings
from services.api.audit import service as audit
from services.api.errors import ApiError, BadRequestError, NotFoundError
from services.api.events import service as events
from services.api.exports import links, repository
from services.api.exports.render import CONTENT_TYPES, EXTENSIONS, ExportFormat, TooManyRows, render
from services.api.records import from_columns

FORMAT_CHANGED = "organization.export_format_changed"


class LinkRefused(ApiError):
    status_code = 403


@dataclass(frozen=True)
class ExportFile:
    id: str
    mapping_job_id: str
    format: ExportFormat
    file_size: int
    row_count: int
    created_at: datetime
    download_url: str


@dataclass(frozen=True)
class ProducedExport:
    file: ExportFile
    event: asyncpg.Record  # export.ready, to publish after the commit


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    content: bytes


def _file(record: asyncpg.Record, settings: Settings) -> ExportFile:
    return from_columns(
        ExportFile,
        record,
        format=ExportFormat(record["format"]),
        download_url=links.signed_url(
            settings.public_base_url, record["id"], settings.export_link_ttl_s
        ),
    )


async def produce_in_transaction(
    conn: asyncpg.Connection,
    settings: Settings,
    org_id: str,
    job_id: str,
    results: list[dict[str, Any]],
) -> ProducedExport:
    """Render, store and announce an export of `results` (caller holds the job's lock)."""
    export_format = ExportFormat(await repository.export_format(conn, org_id))
    try:
        # Rendering megabytes of rows is CPU work: keep it off the event loop.
        content = await asyncio.to_thread(render, export_format, results)
    except TooManyRows as exc:
        raise BadRequestError(str(exc)) from exc
    record = await repository.insert_file(
        conn,
        new_id(IdPrefix.EXPORT_FILE),
        org_id,
        job_id,
        export_format.value,
        content,
        len(results),
    )
    file = _file(record, settings)
    data = ExportReadyData(
        export_file_id=file.id,
        mapping_job_id=job_id,
        download_url=file.download_url,
        format=file.format.value,
        file_size=file.file_size,
        row_count=file.row_count,
    )
    event = await events.record_in_transaction(
        conn,
        org_id,
        EventType.EXPORT_READY,
        data.model_dump(mode="json", by_alias=True),
        ordering_key=job_id,  # a job's events keep their order on an ordered endpoint
    )
    return ProducedExport(file=file, event=event)


async def get_file(pool: asyncpg.Pool, settings: Settings, org_id: str, file_id: str) -> ExportFile:
    record = await repository.get_meta(pool, org_id, file_id)
    if record is None:
        raise NotFoundError(f"export file {file_id!r} not found")
    return _file(record, settings)


async def list_for_job(
    pool: asyncpg.Pool, settings: Settings, org_id: str, job_id: str
) -> list[ExportFile]:
    return [_file(r, settings) for r in await repository.list_for_job(pool, org_id, job_id)]


async def download(pool: asyncpg.Pool, file_id: str, expires: int, signature: str) -> Download:
    """The file a signed link names; 403 for a tampered or expired link, 404 for a gone file."""
    try:
        links.check(file_id, expires, signature)
    except links.LinkInvalid as exc:
        raise LinkRefused(str(exc)) from exc
    record = await repository.get_with_content(pool, file_id)
    if record is None:
        raise NotFoundError(f"export file {file_id!r} not found")
    export_format = ExportFormat(record["format"])
    return Download(
        filename=f"{record['mapping_job_id']}-{file_id}.{EXTENSIONS[export_format]}",
        content_type=CONTENT_TYPES[export_format],
        content=bytes(record["content"]),
    )


async def get_format(pool: asyncpg.Pool, org_id: str) -> ExportFormat:
    return ExportFormat(await repository.export_format(pool, org_id))


async def set_format(pool: asyncpg.Pool, org_id: str, export_format: ExportFormat) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await repository.set_export_format(conn, org_id, export_format.value)
        await audit.record(conn, org_id, FORMAT_CHANGED, {"format": export_format.value})
