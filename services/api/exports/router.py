from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import Org
from services.api.exports import service
from services.api.exports.schemas import ExportFileOut, ExportFormatIn, ExportFormatOut
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(tags=["exports"], route_class=ApiRoute)


@router.get("/export-format", response_model=ExportFormatOut)
async def get_export_format(state: State, org: Org) -> ExportFormatOut:
    """The format of the org's export files (CSV until changed)."""
    return ExportFormatOut(format=await service.get_format(state.pool, org.id))


@router.put("/export-format", response_model=ExportFormatOut)
async def put_export_format(body: ExportFormatIn, state: State, org: Org) -> ExportFormatOut:
    """Set the format of every export from now on: CSV, JSON or XLSX."""
    await service.set_format(state.pool, org.id, body.format)
    return ExportFormatOut(format=body.format)


@router.get("/export-files/{file_id}", response_model=ExportFileOut)
async def get_export_file(file_id: str, state: State, org: Org) -> ExportFileOut:
    """An export file's metadata with a fresh download link."""
    return ExportFileOut.from_file(
        await service.get_file(state.pool, state.settings, org.id, file_id)
    )


@router.get(
    "/export-files/{file_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_export_file(
    file_id: str,
    state: State,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> Response:
    """The file itself. The signed link from `export.ready` is the credential (no bearer
    token): a tampered or expired link is a 403."""
    found = await service.download(state.pool, file_id, expires, signature)
    return Response(
        content=found.content,
        media_type=found.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Cache-Control": "private, no-store",
        },
    )
