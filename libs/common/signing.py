"""The v1 signature scheme (Stripe-compatible): the sender signs, receivers verify.

`X-Webhook-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]` where each hex is
HMAC-SHA256(key = the whole secret string as UTF-8, msg = f"{t}.{raw_body}").
Several `v1=` appear while a rotated secret is still in its grace window.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence

SIGNATURE_HEADER = "X-Webhook-Signature"
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
