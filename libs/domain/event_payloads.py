"""The `data` of every event type, as pydantic models: one source for producers, the
`GET /event-types` JSON Schemas and the verification SDK's typed `parse_event`.

Models accept fields they do not know (`extra="allow"`): a receiver built against today's
schema keeps working when a later version adds a field. Field names are camelCase on the
wire and snake_case in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from libs.domain.event_types import EventType
from libs.domain.sink_payload import SinkPayload
from libs.domain.wire_model import WireModel


class EventData(WireModel):
    """The data of one event type."""


class MappingStats(EventData):
    total: int = Field(ge=0, description="Rows the job read.")
    matched: int = Field(ge=0, description="Rows matched to a reference record.")
    unmatched: int = Field(ge=0, description="Rows left without a match.")


class MappingCompletedData(EventData):
    """A mapping job finished successfully."""

    mapping_job_id: str = Field(description="The job that completed (`job_…`).")
    status: Literal["COMPLETED"] = "COMPLETED"
    row_count: int = Field(ge=0, description="Rows the job mapped.")
    agent_id: str | None = Field(default=None, description="The agent that ran the job.")
    stats: MappingStats | None = None
    export_file_id: str | None = Field(
        default=None, description="The export produced for the job, when one was."
    )
    completed_at: datetime | None = None


class MappingError(EventData):
    code: str = Field(description="A stable, machine-readable reason.")
    message: str = Field(description="What went wrong, for people.")


class MappingFailedData(EventData):
    """A mapping job ended without results."""

    mapping_job_id: str
    status: Literal["FAILED"] = "FAILED"
    error: MappingError
    agent_id: str | None = Field(default=None, description="The agent that ran the job.")
    failed_at: datetime | None = None


class MappingErrorResolvedData(EventData):
    """An error found during mapping was resolved (by a person or a rule)."""

    mapping_job_id: str
    error_id: str
    resolution: str | None = Field(default=None, description="How it was resolved.")
    resolved_at: datetime | None = None


class InventoryDuplicateResolvedData(EventData):
    """Two inventory records were found to be the same and merged."""

    inventory_item_id: str = Field(description="The record that was kept.")
    duplicate_of_id: str = Field(description="The record merged into it.")
    resolved_at: datetime | None = None


class ExportReadyData(EventData):
    """An export file can be downloaded."""

    export_file_id: str
    mapping_job_id: str
    download_url: str = Field(description="A time-limited link to the file.")
    format: Literal["CSV", "JSON", "XLSX"]
    file_size: int = Field(ge=0, description="Bytes.")
    row_count: int = Field(ge=0)


class WebhookTestData(EventData):
    """A synthetic event sent by a `/test` call to the endpoint it names."""

    message: str
    subscription_id: str | None = None
    destination_id: str | None = None
    data_source_id: str | None = Field(
        default=None, description="The agent results sink a /test call targets (`ds_…`)."
    )
    sink_payload: SinkPayload | None = Field(
        default=None, description="What that sink's /test call sends instead of an envelope."
    )


class EndpointDisabledData(EventData):
    """hookpost disabled one of the organization's endpoints (never sent to that endpoint):
    its events are PARKED until it is re-activated and recovered."""

    endpoint_id: str = Field(description="The endpoint disabled (`sub_…`, `dest_…`, …).")
    endpoint_kind: str = Field(description="Its front door: SUBSCRIPTION, DESTINATION, …")
    name: str | None = None
    url: str = Field(description="Its URL, query values and path tokens masked.")
    reason: Literal["ENDPOINT_GONE", "FAILING"] = Field(
        description="ENDPOINT_GONE: it answered 410 Gone; FAILING: every attempt to it failed"
        " for the configured period, with that many DEAD deliveries in a row."
    )
    http_status: int | None = Field(default=None, description="The answer that decided it.")
    failing_since: datetime | None = Field(
        default=None, description="FAILING: since when every attempt failed."
    )
    disabled_at: datetime


class ReportError(EventData):
    code: str = Field(description="e.g. `target_not_found`.")
    message: str = Field(description="e.g. `Could not identify target speaker`.")


class ReportCompletedData(EventData):
    """A report job finished (seed 004): fetch the report with GET /reports/{reportId}."""

    job_id: str
    report_id: str
    status: Literal["completed"] = "completed"


class ReportFailedData(EventData):
    """A report job failed (seed 004)."""

    job_id: str
    status: Literal["failed"] = "failed"
    error: ReportError


class TruncatedData(EventData):
    """What `data` holds instead when the envelope would exceed the 64 KiB payload cap."""

    truncated: Literal[True]
    data_ref: str = Field(description="GET this API path for the event's full data.")


PAYLOAD_MODELS: dict[EventType, type[EventData]] = {
    EventType.MAPPING_COMPLETED: MappingCompletedData,
    EventType.MAPPING_ERROR_RESOLVED: MappingErrorResolvedData,
    EventType.INVENTORY_DUPLICATE_RESOLVED: InventoryDuplicateResolvedData,
    EventType.MAPPING_FAILED: MappingFailedData,
    EventType.EXPORT_READY: ExportReadyData,
    EventType.WEBHOOK_TEST: WebhookTestData,
    EventType.ENDPOINT_DISABLED: EndpointDisabledData,
    EventType.REPORT_COMPLETED: ReportCompletedData,
    EventType.REPORT_FAILED: ReportFailedData,
}


def data_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema of an event type's `data` (wire names, i.e. camelCase)."""
    return PAYLOAD_MODELS[event_type].model_json_schema(by_alias=True)


def parse_data(event_type: EventType, data: dict[str, Any]) -> EventData:
    """`data` as its type's model (TruncatedData when the payload cap replaced it)."""
    if data.get("truncated") is True and "dataRef" in data:
        return TruncatedData.model_validate(data)
    return PAYLOAD_MODELS[event_type].model_validate(data)
