"""Delivery destinations (seed 001): a thin door onto the endpoints domain.

What is this door's own: ids `dest_…`, kind DESTINATION, `type: WEBHOOK`, event types
spelled as wire names (mapping.completed), a rotate-secret with a grace window during which
the sender signs with both secrets, and its /test payload. The CRUD flow is the shared
WebhookDoor's.
"""

from __future__ import annotations

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_payloads import WebhookTestData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix
from services.api.endpoints import service as endpoints
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.service import RotatedSecret
from services.api.events.service import EventOutbox

TEST_MESSAGE = "This is a test webhook from hookpost"
DOOR = WebhookDoor(
    EndpointKind.DESTINATION, IdPrefix.DESTINATION, spell=lambda t: t.value, parse=EventType
)

create = DOOR.create
replace = DOOR.replace
get = DOOR.get
list_all = DOOR.list_all
delete = DOOR.delete
recent_deliveries = DOOR.recent_deliveries


async def rotate_secret(
    pool: asyncpg.Pool, org_id: str, destination_id: str, grace_s: int
) -> RotatedSecret:
    # Seed 001: the old secret keeps working through a grace window (≈5 minutes by default).
    return await endpoints.rotate_secret_with_grace(
        pool, org_id, DOOR.kind, destination_id, grace_s
    )


async def send_test(
    pool: asyncpg.Pool, outbox: EventOutbox, org_id: str, destination_id: str
) -> str:
    data = WebhookTestData(message=TEST_MESSAGE, destination_id=destination_id)
    return await DOOR.send_test(
        pool,
        outbox,
        org_id,
        destination_id,
        data.model_dump(mode="json", by_alias=True, exclude_none=True),
    )
