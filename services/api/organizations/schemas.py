"""The organization settings wire format: the org webhook secret (seed 004, Team Settings)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from services.api.schemas import ApiModel


class WebhookSecretOut(ApiModel):
    webhook_secret_masked: str = Field(description="e.g. `whsec_••••3a0e`: never the secret.")


class WebhookSecretRevealed(ApiModel):
    webhook_secret: str = Field(description="The secret itself (`?reveal=true`, audited).")


class WebhookSecretRotated(ApiModel):
    webhook_secret: str = Field(
        description="The new secret. The old one keeps signing until previousSecretExpiresAt."
    )
    webhook_secret_masked: str
    previous_secret_expires_at: datetime | None = Field(
        default=None,
        description="Until when deliveries also carry the old secret's signature (null: 0 s).",
    )
