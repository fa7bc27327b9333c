"""The delivery-destinations wire format (seed 001): `type: WEBHOOK`, dotted event names."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from services.api.endpoints.schemas import (
    DoorModels,
    SigningSecretOnce,
    WebhookEndpointIn,
    WebhookEndpointOut,
)
from services.api.schemas import ApiModel

DestinationType = Literal["WEBHOOK"]
MAX_GRACE_PERIOD_S = 86_400
DEFAULT_GRACE_PERIOD_S = 300


class DestinationIn(WebhookEndpointIn):
    """The body of POST and PUT (PUT replaces the whole destination)."""

    type: DestinationType = Field(description="Only WEBHOOK exists today.")
    events: list[str] = Field(
        description="Dotted names: mapping.completed, mapping.error.resolved, …", max_length=20
    )


class DestinationOut(WebhookEndpointOut):
    type: DestinationType = "WEBHOOK"


class DestinationCreated(DestinationOut):
    signing_secret: SigningSecretOnce


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


MODELS = DoorModels(DestinationIn, DestinationOut, DestinationCreated, DestinationList)
