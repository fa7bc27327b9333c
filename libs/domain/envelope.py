"""The JSON body every webhook attempt carries, and the payload cap that shapes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

API_VERSION = "2026-06-01"
# ids are `del_` + 26 ULID characters; size checks use a placeholder of the same length.
_PLACEHOLDER_DELIVERY_ID = "del_" + "0" * 26


def event_data_ref(event_id: str) -> str:
    return f"/api/v1/events/{event_id}"


def build_envelope(
    attempt_id: str, event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]
) -> bytes:
    return orjson.dumps(
        {
            "id": attempt_id,
            "eventId": event_id,
            "type": event_type,
            "apiVersion": API_VERSION,
            "createdAt": created_at,
            "data": data,
        },
        option=orjson.OPT_UTC_Z,
    )


def build_report_envelope(
    event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]
) -> bytes:
    """Seed 004's envelope (door F): `id` is the event id, the same on every attempt (its
    receivers deduplicate on it), and `createdAt` has milliseconds as the page shows."""
    stamp = created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({"id": event_id, "type": event_type, "createdAt": stamp, "data": data})


def capped_data(
    event_id: str, event_type: str, created_at: datetime, data: dict[str, Any], cap_bytes: int
) -> dict[str, Any]:
    """The event's data, or a reference to it when the whole envelope would exceed the cap."""
    size = len(build_envelope(_PLACEHOLDER_DELIVERY_ID, event_id, event_type, created_at, data))
    if size <= cap_bytes:
        return data
    return {"truncated": True, "dataRef": event_data_ref(event_id)}
