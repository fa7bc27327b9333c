"""Webhook signatures, the one place that signs and verifies: v1 and Standard Webhooks.

v1 (Stripe-compatible, the default):

`X-Webhook-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]` where each hex is
HMAC-SHA256(key = the whole secret string as UTF-8, msg = f"{t}.{raw_body}").
Several `v1=` appear while a rotated secret is still in its grace window.

mappa (seed 004's report jobs, door F): the same `t=…,v1=…` value under the header
`mappa-signature`, with the organization's webhook secret (Team Settings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum

SIGNATURE_HEADER = "X-Webhook-Signature"
MAPPA_SIGNATURE_HEADER = "mappa-signature"
DEFAULT_TOLERANCE_S = 300


class SignatureVerificationError(ValueError):
    """The payload was not signed by any of the given secrets, or is too old."""


def _hmac_hex(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_v1(body: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """The header value signing `body` with every secret (newest first)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    ts = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={ts}"] + [f"v1={_hmac_hex(secret, ts, body)}" for secret in secrets]
    return ",".join(parts)


def parse_v1_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise SignatureVerificationError("timestamp is not an integer") from exc
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureVerificationError("no t= timestamp in the signature header")
    if not signatures:
        raise SignatureVerificationError("no v1= signature in the signature header")
    return timestamp, signatures


def verify_v1(
    body: bytes,
    header: str,
    secrets: str | Iterable[str],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Return the signed timestamp, or raise SignatureVerificationError.

    Accepts when ANY v1 signature matches ANY secret, comparing in constant time.
    """
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    timestamp, signatures = parse_v1_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureVerificationError("timestamp outside the tolerance window")
    for secret in candidates:
        expected = _hmac_hex(secret, timestamp, body)
        if any(hmac.compare_digest(expected, given) for given in signatures):
            return timestamp
    raise SignatureVerificationError("no signature matches the secret")


# --- Standard Webhooks (https://www.standardwebhooks.com), opt-in per endpoint ------------
#
# `webhook-id: <msg id>`, `webhook-timestamp: <unix seconds>`,
# `webhook-signature: v1,<base64> [v1,<base64> …]` where each base64 is
# HMAC-SHA256(key = base64-decode(secret without `whsec_`), msg = f"{id}.{ts}.{raw_body}").
# Several space-separated signatures appear while a rotated secret is in its grace window.

STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
_STANDARD_SECRET_PREFIX = "whsec_"


class SignatureScheme(StrEnum):
    """How an endpoint's deliveries are signed (`endpoints.signature_scheme`)."""

    V1 = "v1"
    STANDARD_WEBHOOKS = "standard-webhooks"
    MAPPA = "mappa"  # v1's value under `mappa-signature` (seed 004)


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix(_STANDARD_SECRET_PREFIX)
    try:
        # Padding is added because some issuers strip it; b64decode ignores extra padding.
        key = base64.b64decode(encoded + "==", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret must be whsec_ + base64") from exc
    if not key:
        raise ValueError("a Standard Webhooks secret may not be empty")
    return key


def _standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    message = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).digest()


def sign_standard_webhooks(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` value: `v1,<base64>` per secret (newest first), space-separated."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(
        "v1,"
        + base64.b64encode(_standard_signature(_standard_key(s), msg_id, timestamp, body)).decode(
            "ascii"
        )
        for s in secrets
    )


def standard_webhooks_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    return {
        STANDARD_ID_HEADER: msg_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: sign_standard_webhooks(msg_id, timestamp, body, secrets),
    }


def verify_standard_webhooks(
    body: bytes,
    msg_id: str,
    timestamp: str | int,
    signature_header: str,
    secrets: str | Iterable[str],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Return the signed timestamp, or raise SignatureVerificationError.

    Accepts when ANY `v1,` signature matches ANY secret, comparing in constant time;
    signatures of other versions are ignored, as the specification asks.
    """
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not msg_id:
        raise SignatureVerificationError(f"no {STANDARD_ID_HEADER} header")
    try:
        ts = int(timestamp)
    except (TypeError, ValueError) as exc:
        raise SignatureVerificationError(f"{STANDARD_TIMESTAMP_HEADER} is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureVerificationError("timestamp outside the tolerance window")
    given: list[bytes] = []
    for item in signature_header.split():
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not given:
        raise SignatureVerificationError(
            f"no v1 signature in the {STANDARD_SIGNATURE_HEADER} header"
        )
    for secret in candidates:
        try:
            key = _standard_key(secret)
        except ValueError as exc:
            raise SignatureVerificationError(str(exc)) from exc
        expected = _standard_signature(key, msg_id, ts, body)
        if any(hmac.compare_digest(expected, signature) for signature in given):
            return ts
    raise SignatureVerificationError("no signature matches the secret")


# --- Agent results sinks (seed 003) -------------------------------------------------------
#
# A sink chooses how it authenticates us: `X-MT-Signature: sha256=<hex>` with hex =
# HMAC-SHA256(key = the user's secret as UTF-8, msg = raw_body) — no timestamp, exactly as
# the seed's Node snippet checks it — or an Authorization header (Bearer / Basic).

MT_SIGNATURE_HEADER = "X-MT-Signature"
_MT_PREFIX = "sha256="


class SinkAuthScheme(StrEnum):
    """How an agent sink's deliveries are authenticated (`endpoints.signature_scheme`)."""

    HMAC_SHA256 = "mt-hmac-sha256"
    BEARER = "bearer"
    BASIC = "basic"


def sign_mt(body: bytes, secret: str) -> str:
    """The `X-MT-Signature` value: `sha256=<hex HMAC-SHA256(secret, body)>`."""
    if not secret:
        raise ValueError("a secret is needed to sign")
    return _MT_PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_mt(body: bytes, header: str, secrets: str | Iterable[str]) -> None:
    """Raise SignatureVerificationError unless `header` is `sha256=<hex>` of body by a secret."""
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not header.startswith(_MT_PREFIX):
        raise SignatureVerificationError(f"{MT_SIGNATURE_HEADER} must start with {_MT_PREFIX}")
    given = header[len(_MT_PREFIX) :].strip()
    for secret in candidates:
        if secret and hmac.compare_digest(sign_mt(body, secret)[len(_MT_PREFIX) :], given):
            return
    raise SignatureVerificationError("no signature matches the secret")


def sink_authorization(scheme: SinkAuthScheme, secret: str) -> str:
    """The Authorization header value of a Bearer or Basic sink ("user:password" for Basic)."""
    if scheme is SinkAuthScheme.BEARER:
        return f"Bearer {secret}"
    if scheme is SinkAuthScheme.BASIC:
        return "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")
    raise ValueError(f"{scheme} does not authenticate with an Authorization header")
