from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.api.admin import service
from services.api.admin.schemas import PlanChanged, PlanIn
from services.api.auth import Admin
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Admin], route_class=ApiRoute)


@router.put("/organizations/{organization_id}/plan", response_model=PlanChanged)
async def change_plan(organization_id: str, body: PlanIn, state: State) -> PlanChanged:
    """Set an org's plan (HOOKPOST_ADMIN_TOKEN). A downgrade deactivates every ACTIVE
    endpoint holding an event the new plan lacks, with deactivatedReason PLAN_DOWNGRADE."""
    deactivated = await service.change_plan(state.pool, state.tokens, organization_id, body.plan)
    return PlanChanged(
        organization_id=organization_id, plan=body.plan, deactivated_endpoints=deactivated
    )


@router.delete("/organizations/{organization_id}", status_code=status.HTTP_204_NO_CONTENT)
async def erase_organization(organization_id: str, state: State) -> Response:
    """Erase the organization and every row of its data: events, deliveries, attempts,
    audit entries, endpoints, tokens, jobs, agents (HOOKPOST_ADMIN_TOKEN). Audited."""
    await service.erase_organization(state.pool, state.tokens, organization_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
