"""Operator actions: changing an organization's plan (and what a downgrade switches off)."""

from __future__ import annotations

import asyncpg

from libs.common.plans import Plan
from services.api.audit import service as audit
from services.api.endpoints import service as endpoints
from services.api.errors import NotFoundError
from services.api.organizations import repository as organizations


async def change_plan(pool: asyncpg.Pool, org_id: str, plan: Plan) -> list[str]:
    """Set the plan; return the endpoints a downgrade deactivated (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        current = await organizations.lock_organization(conn, org_id)
        if current is None:
            raise NotFoundError(f"organization {org_id!r} not found")
        await organizations.update_plan(conn, org_id, plan.value)
        deactivated = await endpoints.deactivate_for_plan(conn, org_id, plan)
        await audit.record(
            conn,
            org_id,
            audit.AuditAction.PLAN_CHANGED,
            {"from": current["plan"], "to": plan.value},
        )
        if deactivated:
            await audit.record(
                conn,
                org_id,
                audit.AuditAction.ENDPOINTS_DEACTIVATED,
                {
                    "endpointIds": deactivated,
                    "reason": endpoints.PLAN_DOWNGRADE,
                    "plan": plan.value,
                },
            )
    return deactivated
