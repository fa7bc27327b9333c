from __future__ import annotations

from fastapi import APIRouter

from libs.domain.secrets import mask_secret
from services.api.auth import Org
from services.api.organizations import service
from services.api.organizations.schemas import WebhookSecretOut, WebhookSecretRotated
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/organization", tags=["organization"], route_class=ApiRoute)


@router.get("/webhook-secret", response_model=WebhookSecretOut)
async def get_webhook_secret(state: State, org: Org) -> WebhookSecretOut:
    """The org webhook secret, masked. It signs every per-job webhook (`X-Webhook-Signature`)."""
    masked = await service.ensure_webhook_secret(state.pool, org.id)
    return WebhookSecretOut(webhook_secret_masked=masked)


@router.post("/webhook-secret/rotate", response_model=WebhookSecretRotated)
async def rotate_webhook_secret(state: State, org: Org) -> WebhookSecretRotated:
    """A new org webhook secret, in plaintext in this response only. Deliveries sent from now
    on are signed with it alone: the old secret stops verifying at once."""
    secret = await service.rotate_webhook_secret(state.pool, org.id)
    return WebhookSecretRotated(webhook_secret=secret, webhook_secret_masked=mask_secret(secret))
