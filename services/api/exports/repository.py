"""All SQL for export files and the org's export format (organizations.export_format)."""

from __future__ import annotations

import asyncpg

from libs.infra.db.pool import Executor

_META = "id, organization_id, mapping_job_id, format, file_size, row_count, created_at"


async def insert_file(
    conn: Executor,
    file_id: str,
    org_id: str,
    job_id: str,
    export_format: str,
    content: bytes,
    row_count: int,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO export_files (id, organization_id, mapping_job_id, format, content,"
        " file_size, row_count) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" RETURNING {_META}",
        file_id,
        org_id,
        job_id,
        export_format,
        content,
        len(content),
        row_count,
    )


async def get_meta(conn: Executor, org_id: str, file_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_META} FROM export_files WHERE id = $1 AND organization_id = $2",
        file_id,
        org_id,
    )


async def get_with_content(conn: Executor, file_id: str) -> asyncpg.Record | None:
    """By id alone: the caller has already checked a signed link naming this id."""
    return await conn.fetchrow(f"SELECT {_META}, content FROM export_files WHERE id = $1", file_id)


async def list_for_job(conn: Executor, org_id: str, job_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_META} FROM export_files WHERE organization_id = $1 AND mapping_job_id = $2"
        " ORDER BY created_at, id",
        org_id,
        job_id,
    )


async def export_format(conn: Executor, org_id: str) -> str:
    value: str = await conn.fetchval(
        "SELECT export_format FROM organizations WHERE id = $1", org_id
    )
    return value


async def set_export_format(conn: Executor, org_id: str, export_format: str) -> None:
    await conn.execute(
        "UPDATE organizations SET export_format = $2, updated_at = now() WHERE id = $1",
        org_id,
        export_format,
    )
