"""Disabling an endpoint by what it answered (libs/domain/endpoint_health.py decides when):
the change, its audit entry and its endpoint.disabled event commit together."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from libs.domain.endpoint_health import DeactivatedReason
from libs.domain.event_payloads import EndpointDisabledData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id

# Disabling an endpoint (410 Gone, FAILING): once, whichever engine gets there first; its
# failing period ends with it, so a re-activated endpoint starts afresh. The audit entry and
# the endpoint.disabled event (the outbox: the api's relay or the reconciler publishes it)
# commit with the change.
_DISABLE = """
UPDATE endpoints SET status = 'INACTIVE', deactivated_reason = $2, updated_at = now()
WHERE id = $1 AND status = 'ACTIVE'
RETURNING id, organization_id, kind, name, url_masked, updated_at
"""
_FORGET_FAILURES = "DELETE FROM endpoint_failures WHERE endpoint_id = $1"
_AUDIT = "INSERT INTO audit_log (organization_id, action, details) VALUES ($1, $2, $3)"
_OUTBOX_EVENT = "INSERT INTO events (id, organization_id, type, data) VALUES ($1, $2, $3, $4)"
DISABLED_ACTION = "endpoint.disabled"


async def disable_endpoint(
    pool: asyncpg.Pool,
    endpoint_id: str,
    reason: DeactivatedReason,
    *,
    http_status: int | None = None,
    failing_since: datetime | None = None,
) -> bool:
    """INACTIVE for `reason`; False when it was not ACTIVE (disabled already, by someone
    else, or deleted)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_DISABLE, endpoint_id, reason.value)
        await conn.execute(_FORGET_FAILURES, endpoint_id)
        if row is None:
            return False
        data = EndpointDisabledData(
            endpoint_id=endpoint_id,
            endpoint_kind=row["kind"],
            name=row["name"],
            url=row["url_masked"],
            reason=reason.value,
            http_status=http_status,
            failing_since=failing_since,
            disabled_at=row["updated_at"],
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
        org_id = row["organization_id"]
        await conn.execute(_AUDIT, org_id, DISABLED_ACTION, data)
        event_id = new_id(IdPrefix.EVENT)
        await conn.execute(_OUTBOX_EVENT, event_id, org_id, EventType.ENDPOINT_DISABLED.value, data)
    return True
