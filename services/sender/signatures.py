"""How an attempt is signed: one entry point, one branch per signature scheme.

The signing itself lives in libs.common.signing; this module only picks the scheme the
endpoint chose (`endpoints.signature_scheme`) and names the headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.common.signing import (
    SIGNATURE_HEADER,
    SignatureScheme,
    sign_v1,
    standard_webhooks_headers,
)

V1 = SignatureScheme.V1.value
STANDARD_WEBHOOKS = SignatureScheme.STANDARD_WEBHOOKS.value


class UnsupportedSignatureScheme(ValueError):
    pass


@dataclass(frozen=True)
class SigningKeys:
    scheme: str
    secrets: Sequence[str]  # current first, then a rotated secret still in its grace window


def signature_headers(
    endpoint: SigningKeys, body: bytes, attempt_id: str, event_id: str, timestamp: int
) -> dict[str, str]:
    """The headers that sign `body` for this endpoint.

    Standard Webhooks' `webhook-id` is the eventId: stable across attempts, so receivers
    can use it as their idempotency key as the specification intends.
    """
    if not endpoint.secrets:
        raise UnsupportedSignatureScheme("the endpoint has no signing secret")
    if endpoint.scheme == V1:
        return {SIGNATURE_HEADER: sign_v1(body, endpoint.secrets, timestamp)}
    if endpoint.scheme == STANDARD_WEBHOOKS:
        try:
            return standard_webhooks_headers(event_id, timestamp, body, endpoint.secrets)
        except ValueError as exc:  # a secret that is not whsec_ + base64
            raise UnsupportedSignatureScheme(str(exc)) from exc
    raise UnsupportedSignatureScheme(f"signature scheme {endpoint.scheme!r} is not supported")
