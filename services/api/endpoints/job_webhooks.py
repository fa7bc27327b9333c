"""A job's own webhook (mapping jobs: JOB_WEBHOOK, report jobs: REPORT_WEBHOOK): an endpoint
with no secret of its own, which the sender signs with the org webhook secret."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix
from libs.domain.plans import Plan
from libs.domain.signing import SignatureScheme
from libs.infra.settings import Settings
from services.api.endpoints import service as endpoints
from services.api.endpoints.repository import EndpointRow
from services.api.endpoints.service import EndpointSpec
from services.api.errors import NotFoundError
from services.api.organizations import service as organizations

_ID_PREFIXES = {
    EndpointKind.JOB_WEBHOOK: IdPrefix.JOB_WEBHOOK,
    EndpointKind.REPORT_WEBHOOK: IdPrefix.REPORT_WEBHOOK,
}
# A mapping job's webhook subscribes to its job's two outcomes (the dispatcher sends it only
# that job's); a report job's to nothing: its outcome event names it as the target. The
# report webhook signs as seed 004's page says (`mappa-signature`).
_SPECS = {
    EndpointKind.JOB_WEBHOOK: EndpointSpec(
        url="", events=[EventType.MAPPING_COMPLETED, EventType.MAPPING_FAILED], name="job webhook"
    ),
    EndpointKind.REPORT_WEBHOOK: EndpointSpec(
        url="",
        events=[],
        name="report job webhook",
        signature_scheme=SignatureScheme.MAPPA.value,
    ),
}


async def prepare(
    settings: Settings, plan: Plan, kind: EndpointKind, url: str | None
) -> EndpointRow | None:
    """A job's webhook at `url` (None: the job has none), checked (URL safety, DNS included)
    before any transaction, exactly as every door checks its endpoints."""
    if url is None:
        return None
    return await endpoints.prepare_row(settings, plan, kind, replace(_SPECS[kind], url=url))


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


def required(webhook_id: str | None, what: str, job_id: str) -> str:
    """The id of a job's webhook, for a call on it (its recover); a job created without
    `webhook.url` has none, and a call on it is a 404 like an unknown job's."""
    if webhook_id is None:
        raise NotFoundError(f"{what} {job_id!r} has no webhook")
    return webhook_id
