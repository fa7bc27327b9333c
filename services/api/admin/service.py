"""Operator actions: changing an organization's plan (and what a downgrade switches off),
erasing an organization."""

from __future__ import annotations

import asyncpg

from libs.domain.plans import Plan
from services.api.audit import service as audit
from services.api.endpoints import service as endpoints
from services.api.errors import NotFoundError
from services.api.organizations import repository as organizations
from services.api.organizations.service import erase_organization as erase
from services.api.organizations.tokens import TokenCache


async def change_plan(pool: asyncpg.Pool, tokens: TokenCache, org_id: str, plan: Plan) -> list[str]:
    """Set the plan; return the endpoints a downgrade deactivated (one transaction).

    This process's cached tokens of the org see the new plan from the next request on;
    other replicas' within their token cache TTL.
    """
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
    tokens.invalidate_org(org_id)
    return deactivated


async def erase_organization(pool: asyncpg.Pool, tokens: TokenCache, org_id: str) -> None:
    """Erase the organization (organizations/erasure.py); 404 when there is none. This
    replica forgets its tokens at once; others refuse them within their token cache TTL
    (an event stored meanwhile is left out: its organization no longer exists)."""
    erased = await erase(pool, org_id, requested_by="api")
    if erased is None:
        raise NotFoundError(f"organization {org_id!r} not found")
    tokens.invalidate_org(org_id)
