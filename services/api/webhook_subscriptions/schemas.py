"""The webhook-subscriptions wire format (seed 002): enum event names, camelCase fields."""

from __future__ import annotations

from pydantic import Field

from services.api.endpoints.schemas import (
    DoorModels,
    SigningSecretOnce,
    WebhookEndpointIn,
    WebhookEndpointOut,
)
from services.api.schemas import ApiModel


class SubscriptionIn(WebhookEndpointIn):
    """The body of POST and PUT (PUT replaces the whole subscription)."""

    events: list[str] = Field(
        description="Enum names: MAPPING_COMPLETED, MAPPING_ERROR_RESOLVED, …", max_length=20
    )


class SubscriptionOut(WebhookEndpointOut):
    """A subscription, its secrets masked."""


class SubscriptionCreated(SubscriptionOut):
    signing_secret: SigningSecretOnce


class SubscriptionList(ApiModel):
    subscriptions: list[SubscriptionOut]


class SecretRotated(ApiModel):
    id: str
    signing_secret: str


MODELS = DoorModels(SubscriptionIn, SubscriptionOut, SubscriptionCreated, SubscriptionList)
