"""The delivery-destinations wire format (seed 001): `type: WEBHOOK`, dotted event names."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from libs.domain.endpoint_kinds import EndpointStatus
from libs.domain.signing import SignatureScheme
from services.api.endpoints.service import Endpoint
from services.api.schemas import ApiModel, StorableText

DestinationType = Literal["WEBHOOK"]
MAX_GRACE_PERIOD_S = 86_400
DEFAULT_GRACE_PERIOD_S = 300


class DestinationIn(ApiModel):
    """The body of POST and PUT (PUT replaces the whole destination)."""

    type: DestinationType = Field(description="Only WEBHOOK exists today.")
    name: StorableText | None = Field(default=None, max_length=200)
    webhook_url: StorableText = Field(max_length=2048)
    events: list[str] = Field(
        description="Dotted names: mapping.completed, mapping.error.resolved, …", max_length=20
    )
    api_key_name: StorableText | None = None
    api_key_value: StorableText | None = Field(default=None, description="Stored encrypted.")
    additional_headers: dict[StorableText, StorableText] = Field(default_factory=dict)
    status: EndpointStatus = EndpointStatus.ACTIVE
    signature_scheme: SignatureScheme = Field(
        default=SignatureScheme.V1,
        description="`v1` (X-Webhook-Signature, Stripe-compatible) or `standard-webhooks`.",
    )


class DestinationOut(ApiModel):
    id: str
    type: DestinationType = "WEBHOOK"
    organization_id: str
    name: str | None
    webhook_url: str = Field(description="Query values are masked: they may carry a token.")
    events: list[str]
    api_key_name: str | None
    api_key_value_masked: str | None
    additional_headers: dict[str, str]
    status: EndpointStatus
    deactivated_reason: str | None
    signature_scheme: str
    signing_secret_masked: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> DestinationOut:
        return cls(**_fields(endpoint))


class DestinationCreated(DestinationOut):
    signing_secret: str = Field(description="Shown only in this response: store it now.")

    @classmethod
    def from_created(cls, endpoint: Endpoint, signing_secret: str) -> DestinationCreated:
        return cls(**_fields(endpoint), signing_secret=signing_secret)


def _fields(endpoint: Endpoint) -> dict[str, object]:
    return {
        "id": endpoint.id,
        "organization_id": endpoint.organization_id,
        "name": endpoint.name,
        "webhook_url": endpoint.url_masked,
        "events": [t.value for t in endpoint.events],
        "api_key_name": endpoint.api_key_name,
        "api_key_value_masked": endpoint.api_key_value_masked,
        "additional_headers": endpoint.additional_headers,
        "status": endpoint.status,
        "deactivated_reason": endpoint.deactivated_reason,
        "signature_scheme": endpoint.signature_scheme,
        "signing_secret_masked": endpoint.secret_masked,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


class DestinationList(ApiModel):
    destinations: list[DestinationOut]


class RotateSecretIn(ApiModel):
    grace_period_seconds: int = Field(
        default=DEFAULT_GRACE_PERIOD_S,
        ge=0,
        le=MAX_GRACE_PERIOD_S,
        description="How long the old secret keeps signing (both signatures are sent).",
    )


class DestinationSecretRotated(ApiModel):
    id: str
    signing_secret: str
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries also carry the old secret's signature (null: 0 s)."
    )
