"""How an attempt is signed: one entry point, one branch per signature scheme.

- `v1` (default): Stripe-compatible `X-Webhook-Signature: t=…,v1=…[,v1=…]`.
- `mappa` (report jobs, seed 004): v1's value under `mappa-signature`.
- `standard-webhooks`: `webhook-id` (= eventId), `webhook-timestamp`, `webhook-signature`.
Both sign with every secret given (the current one, then a rotated one in its grace window).
- Agent sinks (`mt-hmac-sha256`, `bearer`, `basic`): `X-MT-Signature: sha256=<hex>` or an
  Authorization header, from the user's own secret (sinks have no rotation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.domain.signing import (
    MAPPA_SIGNATURE_HEADER,
    MT_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    SignatureScheme,
    SinkAuthScheme,
    sign_mt,
    sign_v1,
    sink_authorization,
    standard_webhooks_headers,
)


class UnsupportedSignatureScheme(ValueError):
    pass


@dataclass(frozen=True)
class SigningKeys:
    scheme: str
    secrets: Sequence[str]  # current first, then a rotated secret still in its grace window


def signature_headers(
    endpoint: SigningKeys, body: bytes, attempt_id: str, event_id: str, timestamp: int
) -> dict[str, str]:
    """The headers that sign `body` for this endpoint."""
    if not endpoint.secrets:
        raise UnsupportedSignatureScheme("the endpoint has no signing secret")
    if endpoint.scheme == SignatureScheme.V1:
        return {SIGNATURE_HEADER: sign_v1(body, endpoint.secrets, timestamp)}
    if endpoint.scheme == SignatureScheme.MAPPA:
        return {MAPPA_SIGNATURE_HEADER: sign_v1(body, endpoint.secrets, timestamp)}
    if endpoint.scheme == SignatureScheme.STANDARD_WEBHOOKS:
        # webhook-id is the eventId: stable across attempts, the receiver's idempotency key.
        try:
            return standard_webhooks_headers(event_id, timestamp, body, endpoint.secrets)
        except ValueError as exc:  # a secret that is not whsec_ + base64: a failed attempt
            raise UnsupportedSignatureScheme(str(exc)) from exc
    if endpoint.scheme == SinkAuthScheme.HMAC_SHA256:
        return {MT_SIGNATURE_HEADER: sign_mt(body, endpoint.secrets[0])}
    if endpoint.scheme in (SinkAuthScheme.BEARER, SinkAuthScheme.BASIC):
        scheme = SinkAuthScheme(endpoint.scheme)
        return {"Authorization": sink_authorization(scheme, endpoint.secrets[0])}
    raise UnsupportedSignatureScheme(f"signature scheme {endpoint.scheme!r} is not supported")
