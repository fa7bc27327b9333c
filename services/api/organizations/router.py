from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from libs.domain.secrets import mask_secret
from services.api.auth import Org
from services.api.delivery_destinations.schemas import RotateSecretIn
from services.api.organizations import service
from services.api.organizations.schemas import (
    WebhookSecretOut,
    WebhookSecretRevealed,
    WebhookSecretRotated,
)
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/organization", tags=["organization"], route_class=ApiRoute)


@router.get("/webhook-secret", response_model=WebhookSecretOut | WebhookSecretRevealed)
async def get_webhook_secret(
    state: State,
    org: Org,
    reveal: Annotated[bool, Query(description="true: the secret in plaintext (audited)")] = False,
) -> WebhookSecretOut | WebhookSecretRevealed:
    """The org webhook secret ("Team Settings"): masked, or with `?reveal=true` in plaintext
    as `{"webhookSecret"}` (an explicit act, recorded in the audit log). It signs every
    per-job (`X-Webhook-Signature`) and report-job (`mappa-signature`) webhook."""
    if reveal:
        secret = await service.reveal_webhook_secret(state.pool, org.id)
        return WebhookSecretRevealed(webhook_secret=secret)
    masked = await service.ensure_webhook_secret(state.pool, org.id)
    return WebhookSecretOut(webhook_secret_masked=masked)


@router.post("/webhook-secret/rotate", response_model=WebhookSecretRotated)
async def rotate_webhook_secret(
    state: State, org: Org, body: Annotated[RotateSecretIn | None, Body()] = None
) -> WebhookSecretRotated:
    """A new org webhook secret, in plaintext in this response. The old one keeps signing
    beside it for `gracePeriodSeconds` (default 300, 0..86400): until
    `previousSecretExpiresAt` every delivery carries both signatures. The body is optional."""
    grace_s = (body or RotateSecretIn()).grace_period_seconds
    rotated = await service.rotate_webhook_secret(state.pool, org.id, grace_s)
    return WebhookSecretRotated(
        webhook_secret=rotated.secret,
        webhook_secret_masked=mask_secret(rotated.secret),
        previous_secret_expires_at=rotated.previous_secret_expires_at,
    )
