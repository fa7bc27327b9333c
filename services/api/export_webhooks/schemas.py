"""The export-webhooks wire format (seed 000): {url, active}."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from libs.domain.endpoint_kinds import EndpointStatus
from services.api.endpoints.schemas import (
    RATE_LIMIT_DOC,
    REASON_DOC,
    DoorModels,
    EndpointOut,
    RateLimit,
    Spelling,
)
from services.api.endpoints.service import Endpoint
from services.api.schemas import ApiModel, WebhookUrl


class ExportWebhookIn(ApiModel):
    """The body of POST and PUT. PUT replaces both fields, except that a PUT without `url`
    keeps the stored one: seed 000 toggles `active` alone."""

    url: WebhookUrl | None = Field(
        default=None,
        description="Required on POST. May carry a secret token in its query: it reaches "
        "your server intact but is stored encrypted and shown masked.",
    )
    active: bool = True
    rate_limit_per_second: RateLimit | None = Field(default=None, description=RATE_LIMIT_DOC)


class ExportWebhookOut(EndpointOut):
    id: str
    organization_id: str
    url: str = Field(description="Query values are masked: they may carry a token.")
    active: bool
    deactivated_reason: str | None = Field(description=REASON_DOC)
    rate_limit_per_second: float | None = Field(description=RATE_LIMIT_DOC)
    events: list[str]
    signing_secret_masked: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, endpoint: Endpoint, spell: Spelling) -> dict[str, object]:
        active = endpoint.status == EndpointStatus.ACTIVE
        return {
            **super().fields_of(endpoint, spell),
            "url": endpoint.url_masked,
            "active": active,
            "deactivated_reason": endpoint.deactivated_reason,
            "rate_limit_per_second": endpoint.rate_limit_per_second,
        }


class ExportWebhookCreated(ExportWebhookOut):
    signing_secret: str = Field(
        description="Shown only in this response: verify X-Webhook-Signature with it."
    )


class ExportWebhookList(ApiModel):
    webhooks: list[ExportWebhookOut]


MODELS = DoorModels(ExportWebhookIn, ExportWebhookOut, ExportWebhookCreated, ExportWebhookList)
