"""What a delivery's page shows of the request it sent: the body and the headers, secrets
masked. Rebuilt from the stored event and endpoint with the pipeline's own functions (the
envelope, the payload cap, the customer headers), since attempts store their outcome, not
their request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from libs.delivery.request import customer_headers
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.envelope import build_envelope, capped_data
from libs.domain.headers import DELIVERY_HEADER, EVENT_HEADER
from libs.domain.secrets import MASK
from libs.domain.signing import (
    SIGNATURE_HEADER,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    SignatureScheme,
)

PER_ATTEMPT = "(computed for each attempt, never stored)"


@dataclass(frozen=True)
class SentRequest:
    body: str  # pretty JSON
    headers: list[tuple[str, str]]


def _signature_headers(scheme: str, event_id: str) -> list[tuple[str, str]]:
    if scheme == SignatureScheme.STANDARD_WEBHOOKS:
        return [
            (STANDARD_ID_HEADER, event_id),
            (STANDARD_TIMESTAMP_HEADER, PER_ATTEMPT),
            (STANDARD_SIGNATURE_HEADER, PER_ATTEMPT),
        ]
    return [(SIGNATURE_HEADER, PER_ATTEMPT)]


def sent_request(row: asyncpg.Record, attempt_id: str | None, cap_bytes: int) -> SentRequest:
    """The request of attempt `attempt_id` (the latest; None: the next one)."""
    data: dict[str, Any] = dict(row["data"] or {})
    if EndpointKind(row["endpoint_kind"]) == EndpointKind.AGENT_SINK:
        body: Any = data  # a sink's body is its job's results: shown as the event carries it
    else:
        shown = capped_data(
            row["event_id"], row["event_type"], row["event_created_at"], data, cap_bytes
        )
        envelope = build_envelope(
            attempt_id or "del_…",
            row["event_id"],
            row["event_type"],
            row["event_created_at"],
            shown,
        )
        body = orjson.loads(envelope)
    headers: list[tuple[str, str]] = [
        ("Content-Type", "application/json"),
        (EVENT_HEADER, row["event_type"]),
        (DELIVERY_HEADER, attempt_id or "(the attempt's id)"),
        *_signature_headers(row["signature_scheme"] or SignatureScheme.V1, row["event_id"]),
    ]
    # The customer's own headers as the sender adds them; the API key's value is a secret.
    extra = customer_headers(row["api_key_name"], MASK, row["additional_headers"])
    headers.extend(extra.items())
    pretty = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    return SentRequest(pretty, headers)
