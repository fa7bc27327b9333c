"""What an agent results sink receives (seed 003): the completed job itself, not an envelope.

    {"jobId": "job_…", "agentId": "agt_…", "workspaceId": "ws_…",
     "completedAt": "2026-05-25T12:34:56Z", "stats": {…}, "results": [{…}, …]}

The sender builds the body from the stored job (`build_sink_body`); receivers and the docs
read it with `SinkPayload`. Sinks carry the job's full results up to a cap
(HOOKPOST_SINK_PAYLOAD_CAP_BYTES, 10 MiB by default) instead of the 64 KiB envelope cap.
A body that would exceed it is sent with `"results": []`, `"resultsTruncated": true` and
`"resultsRef"`, the API path that serves the full results (as the envelope's `dataRef`
does for oversized events): the push still happens, and nothing is silently cut.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import Field

from libs.domain.wire_model import WireModel


class SinkStats(WireModel):
    total: int = Field(ge=0, description="Rows the job read.")
    matched: int = Field(ge=0, description="Rows matched to a reference hotel.")
    unmatched: int = Field(ge=0, description="Rows left without a match.")


class SinkResultRow(WireModel):
    partner_row_id: str | None = None
    reference_hotel_id: str | None = Field(default=None, description="null: not matched.")
    match_method: str | None = None
    match_confidence: float | None = None


class SinkPayload(WireModel):
    """The body of every push to an agent results sink (and of its /test call)."""

    job_id: str
    agent_id: str
    workspace_id: str
    completed_at: datetime | None
    stats: SinkStats | None
    results: list[SinkResultRow]
    results_truncated: bool | None = Field(
        default=None, description="Present (true) only when the results exceeded the cap."
    )
    results_ref: str | None = Field(
        default=None, description="GET this API path for the full results (when truncated)."
    )


def results_ref(agent_id: str, job_id: str) -> str:
    return f"/api/v1/agents/{agent_id}/jobs/{job_id}/results"


def build_sink_body(
    job_id: str,
    agent_id: str,
    workspace_id: str,
    completed_at: datetime | None,
    stats: Any,
    results_json: str | None,
    cap_bytes: int,
) -> bytes:
    """The JSON body pushed to a sink; `results_json` is the stored results as JSON text.

    The results are embedded as they are stored (orjson.Fragment): a 10 MiB result set is
    not parsed and re-serialised on every attempt.
    """
    head: dict[str, Any] = {
        "jobId": job_id,
        "agentId": agent_id,
        "workspaceId": workspace_id,
        "completedAt": completed_at,
        "stats": stats,
    }
    body = orjson.dumps(
        {**head, "results": orjson.Fragment(results_json or "[]")}, option=orjson.OPT_UTC_Z
    )
    if len(body) <= cap_bytes:
        return body
    return orjson.dumps(
        {
            **head,
            "results": [],
            "resultsTruncated": True,
            "resultsRef": results_ref(agent_id, job_id),
        },
        option=orjson.OPT_UTC_Z,
    )
