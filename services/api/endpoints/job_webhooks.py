"""A job's own webhook (mapping jobs: JOB_WEBHOOK, report jobs: REPORT_WEBHOOK): an endpoint
with no secret of its own, which the sender signs with the org webhook secret."""

from __future__ import annotations

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.ids import IdPrefix
from libs.infra.settings import Settings
from services.api.endpoints import service as endpoints
from services.api.endpoints.repository import EndpointRow
from services.api.organizations import service as organizations

_ID_PREFIXES = {
    EndpointKind.JOB_WEBHOOK: IdPrefix.JOB_WEBHOOK,
    EndpointKind.REPORT_WEBHOOK: IdPrefix.REPORT_WEBHOOK,
}


async def insert(
    conn: asyncpg.Connection,
    settings: Settings,
    org_id: str,
    kind: EndpointKind,
    row: EndpointRow,
    *,
    mapping_job_id: str | None = None,
) -> endpoints.EndpointWithSecret:
    """Inside the job's transaction: the org secret first (it must exist before the first
    send), then the endpoint (`row` from endpoints.prepare_row, checked before it)."""
    await organizations.ensure_webhook_secret(conn, org_id)
    return await endpoints.insert_prepared(
        conn, settings, org_id, kind, _ID_PREFIXES[kind], row, None, mapping_job_id=mapping_job_id
    )
