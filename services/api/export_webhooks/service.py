"""Export webhooks (seed 000): a thin door onto the endpoints domain.

What is this door's own: ids `ewh_…`, kind EXPORT_WEBHOOK, a body of just {url, active},
and one event type, export.ready. URL safety, encryption and masking of the URL (a token
in its query is a secret), the signing secret and the delivery pipeline are shared.
"""

from __future__ import annotations

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix
from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.endpoints import service as endpoints
from services.api.endpoints.service import Endpoint, EndpointSpec, EndpointWithSecret
from services.api.export_webhooks.schemas import ExportWebhookIn

KIND = EndpointKind.EXPORT_WEBHOOK


def _spec(body: ExportWebhookIn) -> EndpointSpec:
    return EndpointSpec(
        url=body.url,
        events=[EventType.EXPORT_READY],
        status=EndpointStatus.ACTIVE if body.active else EndpointStatus.INACTIVE,
    )


async def create(
    pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: ExportWebhookIn
) -> EndpointWithSecret:
    return await endpoints.create_endpoint(
        pool, settings, org_id, plan, KIND, IdPrefix.EXPORT_WEBHOOK, _spec(body)
    )


async def replace(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    webhook_id: str,
    body: ExportWebhookIn,
) -> Endpoint:
    return await endpoints.replace_endpoint(
        pool, settings, org_id, plan, KIND, webhook_id, _spec(body)
    )


async def get(pool: asyncpg.Pool, org_id: str, webhook_id: str) -> Endpoint:
    return await endpoints.get_endpoint(pool, org_id, KIND, webhook_id)


async def list_all(pool: asyncpg.Pool, org_id: str, active_only: bool) -> list[Endpoint]:
    return await endpoints.list_endpoints(pool, org_id, KIND, active_only)


async def delete(pool: asyncpg.Pool, org_id: str, webhook_id: str) -> None:
    await endpoints.delete_endpoint(pool, org_id, KIND, webhook_id)
