"""The organization settings wire format: the org webhook secret (seed 004)."""

from __future__ import annotations

from pydantic import Field

from services.api.schemas import ApiModel


class WebhookSecretOut(ApiModel):
    webhook_secret_masked: str = Field(description="e.g. `whsec_••••3a0e`: never the secret.")


class WebhookSecretRotated(ApiModel):
    webhook_secret: str = Field(
        description="Shown only in this response: store it now. The old secret no longer signs."
    )
    webhook_secret_masked: str
