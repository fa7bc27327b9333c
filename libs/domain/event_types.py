"""The catalogue of event types: wire names, the subscriptions API's enum names, minimum plans."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from libs.domain.plans import Plan


class EventType(StrEnum):
    MAPPING_COMPLETED = "mapping.completed"
    MAPPING_ERROR_RESOLVED = "mapping.error.resolved"
    INVENTORY_DUPLICATE_RESOLVED = "inventory.duplicate.resolved"
    MAPPING_FAILED = "mapping.failed"
    EXPORT_READY = "export.ready"
    WEBHOOK_TEST = "webhook.test"
    ENDPOINT_DISABLED = "endpoint.disabled"
    REPORT_COMPLETED = "report.completed"
    REPORT_FAILED = "report.failed"


@dataclass(frozen=True)
class EventTypeInfo:
    type: EventType
    minimum_plan: Plan
    description: str
    # webhook.test only ever comes from a /test call, report.* only from a report job's
    # producer call to that job's own webhook: neither can be subscribed to.
    subscribable: bool = True
    producible: bool = True  # False: only hookpost itself emits it (POST /events refuses it)


CATALOGUE: dict[EventType, EventTypeInfo] = {
    info.type: info
    for info in (
        EventTypeInfo(EventType.MAPPING_COMPLETED, Plan.FREE, "A mapping job completed."),
        EventTypeInfo(EventType.MAPPING_ERROR_RESOLVED, Plan.PRO, "A mapping error was resolved."),
        EventTypeInfo(
            EventType.INVENTORY_DUPLICATE_RESOLVED, Plan.PRO, "An inventory duplicate was resolved."
        ),
        EventTypeInfo(EventType.MAPPING_FAILED, Plan.FREE, "A mapping job failed."),
        EventTypeInfo(EventType.EXPORT_READY, Plan.FREE, "An export file is ready to download."),
        EventTypeInfo(
            EventType.WEBHOOK_TEST,
            Plan.FREE,
            "A synthetic event sent by a /test call.",
            subscribable=False,
        ),
        EventTypeInfo(
            EventType.ENDPOINT_DISABLED,
            Plan.FREE,
            "An endpoint of the organization was disabled: it answered 410 Gone, or every"
            " attempt to it failed for days (libs/domain/endpoint_health.py).",
            producible=False,
        ),
        EventTypeInfo(
            EventType.REPORT_COMPLETED,
            Plan.FREE,
            "A report job completed (seed 004): sent to that job's webhook.url only.",
            subscribable=False,
            producible=False,
        ),
        EventTypeInfo(
            EventType.REPORT_FAILED,
            Plan.FREE,
            "A report job failed (seed 004): sent to that job's webhook.url only.",
            subscribable=False,
            producible=False,
        ),
    )
}


def enum_name(event_type: EventType) -> str:
    """`mapping.completed` -> `MAPPING_COMPLETED` (the webhook-subscriptions API spelling)."""
    return event_type.name


def from_enum_name(name: str) -> EventType:
    try:
        return EventType[name]
    except KeyError as exc:
        raise ValueError(f"unknown event type {name!r}") from exc
