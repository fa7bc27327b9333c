"""Webhook subscriptions (seed 002): a thin door onto the endpoints domain.

What is this door's own: ids `sub_…`, kind SUBSCRIPTION, event types spelled as enum names
(MAPPING_COMPLETED), a rotate-secret that invalidates the old secret at once, and its
/test payload. The CRUD flow is the shared WebhookDoor's.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_types import enum_name, from_enum_name
from libs.domain.ids import IdPrefix
from services.api.endpoints import rotation
from services.api.endpoints.door import TEST_MESSAGE, WebhookDoor


def test_data(subscription_id: str) -> dict[str, Any]:
    """The data of the webhook.test event a POST …/test sends."""
    return {"message": TEST_MESSAGE, "subscriptionId": subscription_id}


DOOR = WebhookDoor(
    EndpointKind.SUBSCRIPTION,
    IdPrefix.SUBSCRIPTION,
    spell=enum_name,
    parse=from_enum_name,
    test_data=test_data,
)


async def rotate_secret(pool: asyncpg.Pool, org_id: str, subscription_id: str) -> str:
    # Seed 002: the old secret stops working at once (no grace window on this door).
    return await rotation.rotate_secret(pool, org_id, DOOR.kind, subscription_id, grace_s=0)
