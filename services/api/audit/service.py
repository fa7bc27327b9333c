"""The audit trail of configuration changes, recorded in the same transaction as the change."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import asyncpg

from services.api.audit import repository


class AuditAction(StrEnum):
    # Endpoint changes are recorded as f"{noun}.{change}" (subscription.created, …): see
    # services.api.endpoints.service; these are the actions that belong to no front door.
    PLAN_CHANGED = "organization.plan_changed"
    ENDPOINTS_DEACTIVATED = "endpoints.deactivated.plan_downgrade"
    DELIVERY_RETRIED = "delivery.retried"


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    org_id: str,
    action: str,
    details: dict[str, Any],
) -> None:
    await repository.insert_entry(conn, org_id, str(action), details)


async def list_entries(pool: asyncpg.Pool, org_id: str, limit: int) -> list[asyncpg.Record]:
    return await repository.list_entries(pool, org_id, limit)
