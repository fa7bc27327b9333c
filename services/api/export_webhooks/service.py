"""Export webhooks (seed 000): a thin door onto the endpoints domain.

What is this door's own: ids `ewh_…`, kind EXPORT_WEBHOOK, a body of just {url, active},
and one event type, export.ready. URL safety, encryption and masking of the URL (a token
in its query is a secret), the signing secret and the delivery pipeline are shared; so is
the CRUD flow, the WebhookDoor's.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix
from services.api.endpoints import service as endpoints
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.service import EndpointSpec
from services.api.errors import BadRequestError
from services.api.export_webhooks.schemas import ExportWebhookIn


@dataclass(frozen=True)
class ExportWebhookDoor(WebhookDoor):
    def spec(self, body: ExportWebhookIn) -> EndpointSpec:  # type: ignore[override]
        if body.url is None:
            raise BadRequestError("url is required")
        return EndpointSpec(
            url=body.url,
            events=[EventType.EXPORT_READY],
            status=EndpointStatus.ACTIVE if body.active else EndpointStatus.INACTIVE,
            rate_limit_per_second=body.rate_limit_per_second,
        )

    async def completed(  # type: ignore[override]
        self, pool: asyncpg.Pool, org_id: str, endpoint_id: str, body: ExportWebhookIn
    ) -> ExportWebhookIn:
        # Seed 000: "Use PUT to change the URL or toggle the active flag" — either alone.
        if body.url is None:
            url = await endpoints.stored_url(pool, org_id, self.kind, endpoint_id)
            body = body.model_copy(update={"url": url})
        return body


DOOR = ExportWebhookDoor(EndpointKind.EXPORT_WEBHOOK, IdPrefix.EXPORT_WEBHOOK)
