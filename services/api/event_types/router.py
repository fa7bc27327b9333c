"""GET /event-types: the catalogue, with each type's `data` JSON Schema from its model.

Everything here is derived from libs.domain.event_types (names, plans, descriptions) and
libs.domain.event_payloads (schemas), the modules the rest of the code uses: it cannot drift.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from libs.domain import plan_gate
from libs.domain.event_payloads import data_schema
from libs.domain.event_types import CATALOGUE, EventType, enum_name
from libs.domain.plans import Plan
from services.api.auth import Org
from services.api.routing import ApiRoute
from services.api.schemas import ApiModel

router = APIRouter(prefix="/event-types", tags=["event types"], route_class=ApiRoute)


class EventTypeOut(ApiModel):
    type: str = Field(description="The wire name (X-Webhook-Event, envelope `type`).")
    enum_name: str = Field(description="The webhook-subscriptions API spelling.")
    minimum_plan: Plan
    plans: list[Plan] = Field(description="Every plan that may receive this event.")
    subscribable: bool = Field(description="False for webhook.test: only a /test call sends it.")
    description: str
    data_schema: dict[str, Any] = Field(description="JSON Schema of the envelope's `data`.")


class EventTypeList(ApiModel):
    event_types: list[EventTypeOut]


def catalogue() -> list[EventTypeOut]:
    out = []
    for event_type in EventType:
        info = CATALOGUE[event_type]
        out.append(
            EventTypeOut(
                type=event_type.value,
                enum_name=enum_name(event_type),
                minimum_plan=info.minimum_plan,
                plans=plan_gate.plans_allowing_event(event_type),
                subscribable=info.subscribable,
                description=info.description,
                data_schema=data_schema(event_type),
            )
        )
    return out


@router.get("", response_model=EventTypeList)
async def list_event_types(org: Org) -> EventTypeList:
    """Every event type: `{"eventTypes": [{type, enumName, minimumPlan, plans, subscribable,
    description, dataSchema}]}`. The same for every org; the plan fields say what it may use."""
    del org  # authenticated like every route; the catalogue itself is not per-org
    return EventTypeList(event_types=catalogue())
