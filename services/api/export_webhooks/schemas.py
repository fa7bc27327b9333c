"""The export-webhooks wire format (seed 000): {url, active}."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from libs.domain.endpoint_kinds import EndpointStatus
from services.api.endpoints.service import Endpoint
from services.api.schemas import ApiModel, StorableText


class ExportWebhookIn(ApiModel):
    """The body of POST and PUT (PUT replaces both fields)."""

    url: StorableText = Field(
        max_length=2048,
        description="May carry a secret token in its query: it reaches your server intact "
        "but is stored encrypted and shown masked.",
    )
    active: bool = True


class ExportWebhookOut(ApiModel):
    id: str
    organization_id: str
    url: str = Field(description="Query values are masked: they may carry a token.")
    active: bool
    events: list[str]
    signing_secret_masked: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> ExportWebhookOut:
        return cls(**_fields(endpoint))


class ExportWebhookCreated(ExportWebhookOut):
    signing_secret: str = Field(
        description="Shown only in this response: verify X-Webhook-Signature with it."
    )

    @classmethod
    def from_created(cls, endpoint: Endpoint, signing_secret: str) -> ExportWebhookCreated:
        return cls(**_fields(endpoint), signing_secret=signing_secret)


def _fields(endpoint: Endpoint) -> dict[str, object]:
    return {
        "id": endpoint.id,
        "organization_id": endpoint.organization_id,
        "url": endpoint.url_masked,
        "active": endpoint.status == EndpointStatus.ACTIVE,
        "events": [t.value for t in endpoint.events],
        "signing_secret_masked": endpoint.secret_masked,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


class ExportWebhookList(ApiModel):
    webhooks: list[ExportWebhookOut]
