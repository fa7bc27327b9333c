"""How an attempt is signed: one entry point, one branch per signature scheme.

Only `v1` (Stripe-compatible `X-Webhook-Signature`) exists today; a Standard Webhooks
branch goes here, next to it, when libs.common.signing grows one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.common.signing import SIGNATURE_HEADER, sign_v1

V1 = "v1"


class UnsupportedSignatureScheme(ValueError):
    pass


@dataclass(frozen=True)
class SigningKeys:
    scheme: str
    secrets: Sequence[str]  # current first, then a rotated secret still in its grace window


def signature_headers(
    endpoint: SigningKeys, body: bytes, attempt_id: str, event_id: str, timestamp: int
) -> dict[str, str]:
    """The headers that sign `body` for this endpoint (attempt_id/event_id for future schemes)."""
    if not endpoint.secrets:
        raise UnsupportedSignatureScheme("the endpoint has no signing secret")
    if endpoint.scheme == V1:
        return {SIGNATURE_HEADER: sign_v1(body, endpoint.secrets, timestamp)}
    raise UnsupportedSignatureScheme(f"signature scheme {endpoint.scheme!r} is not supported")
