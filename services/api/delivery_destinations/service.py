"""Delivery destinations (seed 001): a thin door onto the endpoints domain.

What is this door's own: ids `dest_…`, kind DESTINATION, `type: WEBHOOK`, event types
spelled as wire names (mapping.completed), a rotate-secret with a grace window during which
the sender signs with both secrets, and its /test payload. The CRUD flow is the shared
WebhookDoor's.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_payloads import WebhookTestData
from libs.domain.ids import IdPrefix
from services.api.endpoints.door import TEST_MESSAGE, WebhookDoor
from services.api.endpoints.rotation import RotatedSecret, rotate_secret_with_grace


def test_data(destination_id: str) -> dict[str, Any]:
    """The data of the webhook.test event a POST …/test sends."""
    data = WebhookTestData(message=TEST_MESSAGE, destination_id=destination_id)
    return data.model_dump(mode="json", by_alias=True, exclude_none=True)


DOOR = WebhookDoor(EndpointKind.DESTINATION, IdPrefix.DESTINATION, test_data=test_data)


async def rotate_secret(
    pool: asyncpg.Pool, org_id: str, destination_id: str, grace_s: int
) -> RotatedSecret:
    # Seed 001: the old secret keeps working through a grace window (≈5 minutes by default).
    return await rotate_secret_with_grace(pool, org_id, DOOR.kind, destination_id, grace_s)
