"""The wire models the front doors share; each door's own models derive from these.

A door's response model says which fields it shows of an endpoint and under what names
(`fields_of`); event types come out in the door's own spelling, which the caller passes in
(the door's `WebhookDoor.spell`: MAPPING_COMPLETED on subscriptions, mapping.completed on
destinations and export webhooks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Self

from pydantic import Field

from libs.domain.endpoint_kinds import MAX_RATE_LIMIT_PER_S, EndpointStatus
from libs.domain.event_types import EventType
from libs.domain.ordering import is_ordered
from libs.domain.signing import SignatureScheme
from services.api.endpoints.service import Endpoint
from services.api.schemas import ApiModel, StorableText, WebhookUrl

Spelling = Callable[[EventType], str]
# An endpoint's own ceiling on attempts per second (every door's `rateLimitPerSecond`).
RateLimit = Annotated[float, Field(gt=0, le=MAX_RATE_LIMIT_PER_S)]
RATE_LIMIT_DOC = (
    "At most this many attempts per second to this endpoint, across every sender (its"
    f" answers may slow it further). Above 0, at most {MAX_RATE_LIMIT_PER_S:g}; null: no limit."
)
REASON_DOC = (
    "Why it is INACTIVE: PLAN_DOWNGRADE (its events stop), ENDPOINT_GONE (it answered 410),"
    " FAILING (every attempt failed for days); null when ACTIVE or switched off by you. While"
    " INACTIVE for any reason but PLAN_DOWNGRADE its events are kept as PARKED deliveries:"
    " re-activate it, then POST …/recover."
)
ORDERED_DELIVERY_TEXT = (
    "Events with the same `orderingKey` arrive one at a time, in the order they were"
    " accepted: the next waits (HELD) until the one before it succeeded, failed or died."
    " Other keys, and events without one, go in parallel."
)
# The signing secret in the answer to a create: the one time it is shown.
SigningSecretOnce = Annotated[str, Field(description="Shown only in this response: store it now.")]


class WebhookEndpointIn(ApiModel):
    """The body of POST and PUT on subscriptions and destinations (PUT replaces it all).

    A door re-declares `events` to say how it spells them."""

    name: StorableText | None = Field(default=None, max_length=200)
    webhook_url: WebhookUrl
    events: list[str] = Field(max_length=20)
    api_key_name: StorableText | None = None
    api_key_value: StorableText | None = Field(default=None, description="Stored encrypted.")
    additional_headers: dict[StorableText, StorableText] = Field(default_factory=dict)
    status: EndpointStatus = EndpointStatus.ACTIVE
    signature_scheme: SignatureScheme = Field(
        default=SignatureScheme.V1,
        description="`v1` (X-Webhook-Signature, Stripe-compatible) or `standard-webhooks`.",
    )
    rate_limit_per_second: RateLimit | None = Field(default=None, description=RATE_LIMIT_DOC)
    ordered_delivery: bool = Field(default=False, description=ORDERED_DELIVERY_TEXT)


class EndpointOut(ApiModel):
    """An endpoint as one door shows it (never a plaintext secret).

    Every door shows the fields `fields_of` maps here, each declaring them in the order its
    responses list them; a door's own `fields_of` adds what else it shows."""

    @classmethod
    def fields_of(cls, endpoint: Endpoint, spell: Spelling) -> dict[str, object]:
        return {
            "id": endpoint.id,
            "organization_id": endpoint.organization_id,
            "events": [spell(t) for t in endpoint.events],
            "signing_secret_masked": endpoint.secret_masked,
            "created_at": endpoint.created_at,
            "updated_at": endpoint.updated_at,
        }

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, spell: Spelling, **extra: object) -> Self:
        """`extra`: what a response adds to the endpoint, e.g. the secret shown on create."""
        return cls(**cls.fields_of(endpoint, spell), **extra)


class WebhookEndpointOut(EndpointOut):
    """What subscriptions and destinations show of an endpoint: secrets masked."""

    id: str
    organization_id: str
    name: str | None
    webhook_url: str = Field(description="Query values are masked: they may carry a token.")
    events: list[str]
    api_key_name: str | None
    api_key_value_masked: str | None
    additional_headers: dict[str, str]
    status: EndpointStatus
    deactivated_reason: str | None = Field(description=REASON_DOC)
    signature_scheme: str
    rate_limit_per_second: float | None = Field(description=RATE_LIMIT_DOC)
    ordered_delivery: bool = Field(description=ORDERED_DELIVERY_TEXT)
    signing_secret_masked: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, endpoint: Endpoint, spell: Spelling) -> dict[str, object]:
        return {
            **super().fields_of(endpoint, spell),
            "name": endpoint.name,
            "webhook_url": endpoint.url_masked,
            "api_key_name": endpoint.api_key_name,
            "api_key_value_masked": endpoint.api_key_value_masked,
            "additional_headers": endpoint.additional_headers,
            "status": endpoint.status,
            "deactivated_reason": endpoint.deactivated_reason,
            "signature_scheme": endpoint.signature_scheme,
            "rate_limit_per_second": endpoint.rate_limit_per_second,
            "ordered_delivery": is_ordered(endpoint.config),
        }


@dataclass(frozen=True)
class DoorModels:
    """A door's wire models, for the routes every door shares (endpoints/routes.py)."""

    body: type[ApiModel]  # of POST and PUT
    out: type[EndpointOut]
    created: type[EndpointOut]  # `out` with the signing secret, shown once
    listing: type[ApiModel]  # the answer to GET on the collection: {key: [out, …]}

    @property
    def list_key(self) -> str:
        (key,) = self.listing.model_fields  # a listing has one field, the list
        return key


class TestQueued(ApiModel):
    """The answer to a door's POST …/test."""

    delivery_id: str
