"""The plan gate (SPEC §3), in one place: which event types and which front doors a plan
allows. The api refuses what a plan does not allow, a downgrade deactivates it, and the
dispatcher never delivers it; each of them asks here.
"""

from __future__ import annotations

from collections.abc import Iterable

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_types import CATALOGUE, EventType
from libs.domain.plans import Plan

# Front doors a plan must reach to have at all (agent results sinks need PRO_MAX).
KIND_MINIMUM_PLAN: dict[EndpointKind, Plan] = {EndpointKind.AGENT_SINK: Plan.PRO_MAX}


def allows_event(plan: Plan | str, event_type: EventType | str) -> bool:
    """Whether `plan` may receive `event_type`; an unknown plan or type is never allowed."""
    try:
        return Plan(plan).at_least(CATALOGUE[EventType(event_type)].minimum_plan)
    except (ValueError, KeyError):
        return False


def forbidden_events(plan: Plan, event_types: Iterable[EventType]) -> list[EventType]:
    return [t for t in event_types if not allows_event(plan, t)]


def plans_allowing_event(event_type: EventType) -> list[Plan]:
    return [p for p in Plan if allows_event(p, event_type)]


def kind_minimum_plan(kind: EndpointKind) -> Plan | None:
    return KIND_MINIMUM_PLAN.get(kind)


def allows_kind(plan: Plan | str, kind: EndpointKind) -> bool:
    minimum = kind_minimum_plan(kind)
    return minimum is None or Plan(plan).at_least(minimum)


def kinds_not_allowed(plan: Plan) -> list[EndpointKind]:
    return [kind for kind in KIND_MINIMUM_PLAN if not allows_kind(plan, kind)]


def plans_allowing_kind(kind: EndpointKind) -> list[Plan]:
    return [p for p in Plan if allows_kind(p, kind)]
