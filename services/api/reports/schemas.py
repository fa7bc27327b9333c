"""The report-jobs wire format (seed 004, door F): exactly the page's names and shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from services.api.schemas import ApiModel, StorableText, WebhookUrl

ReportJobStatus = Literal["queued", "completed", "failed"]


class _Open(ApiModel):
    # The report engine may take options the page does not name: keep them, as given.
    model_config = ConfigDict(extra="allow")


class ReportOutputIn(_Open):
    template: StorableText = Field(min_length=1, max_length=200, examples=["sales_playbook"])


class ReportTargetIn(_Open):
    strategy: StorableText = Field(min_length=1, max_length=200, examples=["dominant"])


class ReportWebhookIn(ApiModel):
    url: WebhookUrl = Field(
        description="Receives this job's report.completed / report.failed, signed "
        "(`mappa-signature`) with the org webhook secret (Team Settings)."
    )


class ReportJobIn(ApiModel):
    url: StorableText = Field(
        max_length=4096, description="The recording to report on (stored encrypted)."
    )
    output: ReportOutputIn
    target: ReportTargetIn
    webhook: ReportWebhookIn | None = None

    @field_validator("url")
    @classmethod
    def _media_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value


class ReportJobAccepted(ApiModel):
    job_id: str
    status: ReportJobStatus


class ReportErrorBody(ApiModel):
    code: StorableText = Field(min_length=1, max_length=200, examples=["target_not_found"])
    message: StorableText = Field(max_length=4000)


class ReportJobOut(ApiModel):
    job_id: str
    status: ReportJobStatus
    report_id: str | None = None
    error: ReportErrorBody | None = None
    created_at: datetime
    updated_at: datetime


class ReportIn(_Open):
    markdown: StorableText = Field(description="The report, as Markdown.")


class ReportCompleteIn(ApiModel):
    report: ReportIn


class ReportFailIn(ApiModel):
    error: ReportErrorBody


class ReportCompleted(ApiModel):
    job_id: str
    report_id: str


class ReportOut(_Open):
    """The report: `markdown` and whatever else the report engine gave it."""

    id: str
    job_id: str
    markdown: str
    created_at: datetime
