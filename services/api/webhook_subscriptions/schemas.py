"""The webhook-subscriptions wire format (seed 002): enum event names, camelCase fields."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from libs.domain.endpoint_kinds import EndpointStatus
from libs.domain.event_types import enum_name
from libs.domain.signing import SignatureScheme
from services.api.endpoints.service import Endpoint
from services.api.schemas import ApiModel, StorableText


class SubscriptionIn(ApiModel):
    """The body of POST and PUT (PUT replaces the whole subscription)."""

    name: StorableText | None = Field(default=None, max_length=200)
    webhook_url: StorableText = Field(max_length=2048)
    events: list[str] = Field(
        description="Enum names: MAPPING_COMPLETED, MAPPING_ERROR_RESOLVED, …", max_length=20
    )
    api_key_name: StorableText | None = None
    api_key_value: StorableText | None = Field(default=None, description="Stored encrypted.")
    additional_headers: dict[StorableText, StorableText] = Field(default_factory=dict)
    status: EndpointStatus = EndpointStatus.ACTIVE
    signature_scheme: SignatureScheme = Field(
        default=SignatureScheme.V1,
        description="`v1` (X-Webhook-Signature, Stripe-compatible) or `standard-webhooks`.",
    )


class SubscriptionOut(ApiModel):
    id: str
    organization_id: str
    name: str | None
    webhook_url: str = Field(description="Query values are masked: they may carry a token.")
    events: list[str]
    api_key_name: str | None
    api_key_value_masked: str | None
    additional_headers: dict[str, str]
    status: EndpointStatus
    deactivated_reason: str | None
    signing_secret_masked: str | None
    signature_scheme: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> SubscriptionOut:
        return cls(**_fields(endpoint))


class SubscriptionCreated(SubscriptionOut):
    signing_secret: str = Field(description="Shown only in this response: store it now.")

    @classmethod
    def from_created(cls, endpoint: Endpoint, signing_secret: str) -> SubscriptionCreated:
        return cls(**_fields(endpoint), signing_secret=signing_secret)


def _fields(endpoint: Endpoint) -> dict[str, object]:
    return {
        "id": endpoint.id,
        "organization_id": endpoint.organization_id,
        "name": endpoint.name,
        "webhook_url": endpoint.url_masked,
        "events": [enum_name(t) for t in endpoint.events],
        "api_key_name": endpoint.api_key_name,
        "api_key_value_masked": endpoint.api_key_value_masked,
        "additional_headers": endpoint.additional_headers,
        "status": endpoint.status,
        "deactivated_reason": endpoint.deactivated_reason,
        "signing_secret_masked": endpoint.secret_masked,
        "signature_scheme": endpoint.signature_scheme,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


class SubscriptionList(ApiModel):
    subscriptions: list[SubscriptionOut]


class SecretRotated(ApiModel):
    id: str
    signing_secret: str


class TestQueued(ApiModel):
    delivery_id: str
