from __future__ import annotations

from libs.domain.plans import Plan
from services.api.schemas import ApiModel


class PlanIn(ApiModel):
    plan: Plan


class PlanChanged(ApiModel):
    organization_id: str
    plan: Plan
    deactivated_endpoints: list[str]
