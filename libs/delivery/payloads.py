"""What an attempt's body is: the front door chooses its payload shape.

Every door sends the envelope (SPEC §5) except report jobs' webhooks, which send seed 004's
own envelope (`id` = the event id), and agent results sinks, which send the
completed job itself (libs/domain/sink_payload.py) — or, for their /test call, the
synthetic sink payload the api put in the test event's data.
"""

from __future__ import annotations

import orjson

from libs.delivery.repository import DeliveryRow
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.envelope import build_envelope, build_report_envelope
from libs.domain.event_types import EventType
from libs.domain.sink_payload import build_sink_body
from libs.infra.broker.messages import DeliveryTask


class UnsendablePayload(ValueError):
    """No body can be built for this attempt; the message says why (recorded as its error)."""


def request_body(
    task: DeliveryTask, row: DeliveryRow, attempt_id: str, sink_cap_bytes: int
) -> bytes:
    if row.endpoint.kind == EndpointKind.REPORT_WEBHOOK:
        return build_report_envelope(task.event_id, task.type, task.event_created_at, task.data)
    if row.endpoint.kind != EndpointKind.AGENT_SINK:
        return build_envelope(
            attempt_id, task.event_id, task.type, task.event_created_at, task.data
        )
    if task.type == EventType.WEBHOOK_TEST:
        payload = task.data.get("sinkPayload")
        if not isinstance(payload, dict):
            raise UnsendablePayload("the test event carries no sink payload")
        return orjson.dumps(payload)
    if row.job_id is None or row.endpoint.agent_id is None or row.endpoint.workspace_id is None:
        raise UnsendablePayload("the event names no mapping job of this sink's agent")
    return build_sink_body(
        row.job_id,
        row.endpoint.agent_id,
        row.endpoint.workspace_id,
        row.job_completed_at,
        row.job_stats,
        row.job_results_json,
        sink_cap_bytes,
    )
