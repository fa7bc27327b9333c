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
from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.endpoints import service as endpoints
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.service import Endpoint, EndpointSpec
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

    async def replace(  # type: ignore[override]
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        org_id: str,
        plan: Plan,
        endpoint_id: str,
        body: ExportWebhookIn,
    ) -> Endpoint:
        # Seed 000: "Use PUT to change the URL or toggle the active flag" — either alone.
        if body.url is None:
            url = await endpoints.stored_url(pool, org_id, self.kind, endpoint_id)
            body = body.model_copy(update={"url": url})
        return await super().replace(pool, settings, org_id, plan, endpoint_id, body)


DOOR = ExportWebhookDoor(EndpointKind.EXPORT_WEBHOOK, IdPrefix.EXPORT_WEBHOOK)
