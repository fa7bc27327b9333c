"""The export wire format (seed 000): the org's export format and export file metadata."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pydantic import Field

from services.api.exports.render import ExportFormat
from services.api.exports.service import ExportFile
from services.api.schemas import ApiModel


class ExportFormatIn(ApiModel):
    format: ExportFormat = Field(description="CSV, JSON or XLSX: applies to every export.")


class ExportFormatOut(ApiModel):
    format: ExportFormat


class ExportFileOut(ApiModel):
    export_file_id: str
    mapping_job_id: str
    format: ExportFormat
    file_size: int = Field(description="Bytes of the file.")
    row_count: int
    download_url: str = Field(description="A time-limited link; no bearer token needed.")
    created_at: datetime

    @classmethod
    def from_file(cls, file: ExportFile) -> ExportFileOut:
        fields = dataclasses.asdict(file)
        return cls(export_file_id=fields.pop("id"), **fields)
