"""Sample delivery rows and tasks, as the engine sees them: for unit tests and for the
benchmarks that time an attempt's code paths (benchmarks/hot_path_cost.py)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from libs.delivery.endpoint_cache import EndpointSettings
from libs.delivery.repository import DeliveryRow
from libs.infra.broker.messages import DeliveryTask
from libs.infra.crypto import encrypt

UNIT_TIME = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def endpoint_settings(**changes: Any) -> EndpointSettings:
    """An endpoint as the engine's cache holds it: a v1 destination, unless changed."""
    endpoint = EndpointSettings(
        id="dst_unit",
        organization_id="org_unit",
        agent_id=None,
        kind="DESTINATION",
        url_enc=encrypt("https://hooks.example.com/x?token=abc"),
        url_masked="https://hooks.example.com/x",
        signature_scheme="v1",
        secret_enc=encrypt("whsec_unit"),
        previous_secret_enc=None,
        previous_secret_expires_at=None,
        api_key_name=None,
        api_key_value_enc=None,
        additional_headers={},
        config={},
        workspace_id=None,
    )
    return replace(endpoint, **changes)


def sender_delivery_row(**changes: Any) -> DeliveryRow:
    """What the sender loads for one delivery: a PENDING v1 destination, unless changed
    (a change names a field of DeliveryRow or of its EndpointSettings)."""
    endpoint_fields = {f.name for f in fields(EndpointSettings)}
    row = DeliveryRow(
        status="PENDING",
        attempt_count=0,
        schedule_start=1,
        endpoint=endpoint_settings(**{k: v for k, v in changes.items() if k in endpoint_fields}),
        recorded_succeeded=None,
        recorded_http_status=None,
    )
    return replace(row, **{k: v for k, v in changes.items() if k not in endpoint_fields})


def delivery_task(**changes: Any) -> DeliveryTask:
    """A delivery task for unit tests: `del_1` of `evt_1` to `dest_1` of `org_1`."""
    fields: dict[str, Any] = {
        "delivery_id": "del_1",
        "event_id": "evt_1",
        "endpoint_id": "dest_1",
        "organization_id": "org_1",
        "type": "mapping.completed",
        "event_created_at": UNIT_TIME,
        "data": {"a": 1},
    }
    return DeliveryTask(**(fields | changes))
