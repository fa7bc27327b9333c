"""The mapping-jobs wire format (seed 004): a job, its optional webhook, its two outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from services.api.schemas import ApiModel, StorableText, WebhookUrl

JobStatus = Literal["RUNNING", "COMPLETED", "FAILED"]


class JobWebhookIn(ApiModel):
    url: WebhookUrl = Field(
        description="Receives mapping.completed / mapping.failed for this job only, signed "
        "with the org webhook secret (GET /organization/webhook-secret)."
    )


class MappingJobIn(ApiModel):
    agent_id: StorableText | None = Field(
        default=None, max_length=100, description="One of the org's agents (`agt_…`)."
    )
    webhook: JobWebhookIn | None = None


class JobStats(ApiModel):
    total: int = Field(ge=0, le=2**62)
    matched: int = Field(ge=0, le=2**62)
    unmatched: int = Field(ge=0, le=2**62)


class CompleteIn(ApiModel):
    stats: JobStats | None = None
    results: list[dict[str, Any]] = Field(
        default_factory=list, description="The result rows (JSON objects): what exports hold."
    )


class JobErrorIn(ApiModel):
    code: StorableText = Field(min_length=1, max_length=200)
    message: StorableText = Field(max_length=4000)


class FailIn(ApiModel):
    error: JobErrorIn


class JobWebhookOut(ApiModel):
    id: str
    url: str = Field(description="Query values are masked: they may carry a token.")


class MappingJobOut(ApiModel):
    job_id: str
    status: JobStatus
    agent_id: str | None
    webhook: JobWebhookOut | None
    stats: JobStats | None
    error: JobErrorIn | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    failed_at: datetime | None


class JobCompleted(MappingJobOut):
    export_file_id: str | None = Field(
        description="The export produced on completion (when an endpoint wants export.ready)."
    )


class ExportQueued(ApiModel):
    export_file_id: str
    mapping_job_id: str
    format: str
    file_size: int
    row_count: int
    download_url: str
