"""Receiving hookpost webhooks: verify the signature, then parse the event, typed.

    from libs.sdk.webhooks import WebhookVerificationError, parse_event, verify_signature

    verify_signature(raw_body, request.headers, secret)  # raises WebhookVerificationError
    event = parse_event(raw_body)                         # WebhookEvent, data typed by type

The scheme is detected from the headers: `X-Webhook-Signature` is hookpost's default v1
(Stripe-compatible); `webhook-id` / `webhook-timestamp` / `webhook-signature` is Standard
Webhooks (an endpoint's opt-in `signatureScheme`); `mappa-signature` is v1's value on a report
job's webhook (seed 004: libs.sdk.Mappa has that page's whole surface). Verifying itself is
libs.domain.signing's, the same module the sender signs with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from libs.domain.event_payloads import EventData, parse_data
from libs.domain.event_types import EventType
from libs.domain.signing import (
    DEFAULT_TOLERANCE_S,
    MAPPA_SIGNATURE_HEADER,
    MT_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    SignatureScheme,
    SignatureVerificationError,
    verify_mt,
    verify_standard_webhooks,
    verify_v1,
)
from libs.domain.sink_payload import SinkPayload
from libs.domain.wire_model import WireModel

__all__ = [
    "SinkPayload",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookVerificationError",
    "detect_scheme",
    "parse_event",
    "parse_sink_payload",
    "verify_signature",
    "verify_sink_signature",
]

WebhookVerificationError = SignatureVerificationError


class WebhookPayloadError(ValueError):
    """The body is not a hookpost event envelope (or its data does not fit its type)."""


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def detect_scheme(headers: Mapping[str, str]) -> SignatureScheme:
    """Which scheme signed the request, from its headers (names are case-insensitive)."""
    lowered = _lowered(headers)
    if SIGNATURE_HEADER.lower() in lowered:
        return SignatureScheme.V1
    if STANDARD_SIGNATURE_HEADER in lowered:
        return SignatureScheme.STANDARD_WEBHOOKS
    if MAPPA_SIGNATURE_HEADER in lowered:
        return SignatureScheme.MAPPA
    raise WebhookVerificationError(
        f"no signature header: expected {SIGNATURE_HEADER}, {STANDARD_SIGNATURE_HEADER}"
        f" or {MAPPA_SIGNATURE_HEADER}"
    )


def verify_signature(
    payload: bytes | str,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check that `payload` (the RAW request body) was signed by one of `secrets`.

    Pass several secrets while you roll a rotated one out. Returns the signed Unix
    timestamp; raises WebhookVerificationError when no signature matches, a header is
    missing or malformed, or the timestamp is more than `tolerance_s` from now.
    """
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not candidates:
        raise ValueError("at least one secret is needed to verify")
    lowered = _lowered(headers)
    scheme = detect_scheme(lowered)
    if scheme is SignatureScheme.V1:
        return verify_v1(body, lowered[SIGNATURE_HEADER.lower()], candidates, tolerance_s)
    if scheme is SignatureScheme.MAPPA:
        return verify_v1(body, lowered[MAPPA_SIGNATURE_HEADER], candidates, tolerance_s)
    missing = [h for h in (STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER) if h not in lowered]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    return verify_standard_webhooks(
        body,
        lowered[STANDARD_ID_HEADER],
        lowered[STANDARD_TIMESTAMP_HEADER],
        lowered[STANDARD_SIGNATURE_HEADER],
        candidates,
        tolerance_s,
    )


class WebhookEvent(WireModel):
    """The envelope of every delivery. `data` is the model of its type (libs.domain.event_payloads),
    TruncatedData when the payload cap replaced it, or a plain dict for a type this version
    of the SDK does not know yet."""

    id: str  # this attempt (`del_…`): new on every retry
    event_id: str  # stable across retries: deduplicate on it
    type: str
    api_version: str
    created_at: datetime
    data: EventData | dict[str, Any]

    @property
    def event_type(self) -> EventType | None:
        try:
            return EventType(self.type)
        except ValueError:
            return None


def parse_event(payload: bytes | str) -> WebhookEvent:
    """The envelope, with `data` parsed into the model of its type. Verify first."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise WebhookPayloadError(f"the body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise WebhookPayloadError("the body is not a JSON object")
    data = raw.get("data")
    try:
        envelope = WebhookEvent.model_validate({**raw, "data": {}})
        if not isinstance(data, dict):
            raise WebhookPayloadError("the envelope's data is not an object")
        event_type = envelope.event_type
        typed: EventData | dict[str, Any] = (
            data if event_type is None else parse_data(event_type, data)
        )
    except ValidationError as exc:
        raise WebhookPayloadError(f"not a valid hookpost event: {exc}") from exc
    return envelope.model_copy(update={"data": typed})


# --- Agent results sinks (seed 003) -------------------------------------------------------


def verify_sink_signature(
    payload: bytes | str, headers: Mapping[str, str], secrets: str | Sequence[str]
) -> None:
    """Check an HmacSha256 sink push: `X-MT-Signature: sha256=<hex HMAC(secret, raw body)>`.

    The scheme carries no timestamp (deduplicate on `jobId`). Raises
    WebhookVerificationError when the header is missing or no secret matches.
    """
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    header = _lowered(headers).get(MT_SIGNATURE_HEADER.lower())
    if header is None:
        raise WebhookVerificationError(f"no {MT_SIGNATURE_HEADER} header")
    verify_mt(body, header, secrets)


def parse_sink_payload(payload: bytes | str) -> SinkPayload:
    """A sink push's body: {jobId, agentId, workspaceId, completedAt, stats, results}."""
    try:
        return SinkPayload.model_validate_json(payload)
    except ValidationError as exc:
        raise WebhookPayloadError(f"not a valid agent sink payload: {exc}") from exc
