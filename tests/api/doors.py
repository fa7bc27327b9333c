"""The two webhook front doors as the api tests see them.

Webhook subscriptions (seed 002) and delivery destinations (seed 001) are one resource in
two wire formats: what holds for both is tested once, on each (test_webhook_doors.py, with
the `door` fixture); what is one door's own stays in test_subscriptions.py and
test_destinations.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.api.conftest import Client, subscription_body

# What a subscription response shows: never the signing secret nor the API key value.
SUBSCRIPTION_FIELDS = frozenset(
    "id organizationId name webhookUrl events apiKeyName apiKeyValueMasked additionalHeaders"
    " status deactivatedReason signatureScheme rateLimitPerSecond orderedDelivery"
    " signingSecretMasked createdAt updatedAt".split()
)


def destination_body(**overrides: Any) -> dict[str, Any]:
    """A valid destination body; an override of `...` leaves that field out."""
    body: dict[str, Any] = {
        "type": "WEBHOOK",
        "name": "Production webhook",
        "webhookUrl": "https://localhost/hooks/mapping",
        "events": ["mapping.completed"],
        "status": "ACTIVE",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@dataclass(frozen=True)
class Door:
    name: str
    path: str
    id_prefix: str
    list_key: str
    fields: frozenset[str]
    base_body: dict[str, Any]
    enum_events: bool  # MAPPING_COMPLETED rather than mapping.completed
    test_data_key: str  # names the endpoint in a webhook.test event's data
    constants: dict[str, str] = field(default_factory=dict)  # fields every response has so

    def spell(self, dotted: str) -> str:
        """An event type (mapping.completed) as this door names it."""
        return dotted.replace(".", "_").upper() if self.enum_events else dotted

    def body(self, **overrides: Any) -> dict[str, Any]:
        return {**self.base_body, **overrides}

    def url(self, endpoint_id: str, suffix: str = "") -> str:
        return f"{self.path}/{endpoint_id}{suffix}"

    async def create(self, client: Client, **overrides: Any) -> dict[str, Any]:
        response = await client.post(self.path, json=self.body(**overrides))
        assert response.status_code == 201, response.text
        return response.json()

    async def listed(self, client: Client, query: str = "") -> list[dict[str, Any]]:
        response = await client.get(f"{self.path}{query}")
        assert response.status_code == 200, response.text
        return response.json()[self.list_key]


SUBSCRIPTIONS = Door(
    name="subscriptions",
    path="/api/v1/webhook-subscriptions",
    id_prefix="sub",
    list_key="subscriptions",
    fields=SUBSCRIPTION_FIELDS,
    base_body=subscription_body(),
    enum_events=True,
    test_data_key="subscriptionId",
)
DESTINATIONS = Door(
    name="destinations",
    path="/api/v1/delivery-destinations",
    id_prefix="dest",
    list_key="destinations",
    fields=SUBSCRIPTION_FIELDS | {"type"},
    base_body=destination_body(),
    enum_events=False,
    test_data_key="destinationId",
    constants={"type": "WEBHOOK"},
)
WEBHOOK_DOORS = (SUBSCRIPTIONS, DESTINATIONS)
