"""The plan gate: SPEC §3's table, asked the way the api and the dispatcher ask it."""

from __future__ import annotations

import pytest

from libs.domain import plan_gate
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_types import EventType
from libs.domain.plans import Plan

PRO_AND_ABOVE = {EventType.MAPPING_ERROR_RESOLVED, EventType.INVENTORY_DUPLICATE_RESOLVED}


@pytest.mark.parametrize("event_type", list(EventType))
def test_events_follow_the_spec_table(event_type: EventType) -> None:
    expected_free = event_type not in PRO_AND_ABOVE
    assert plan_gate.allows_event(Plan.FREE, event_type) is expected_free
    assert plan_gate.allows_event(Plan.PRO, event_type)
    assert plan_gate.allows_event(Plan.ENTERPRISE, event_type)
    # the dispatcher asks with the strings it read from the database and the message
    assert plan_gate.allows_event(Plan.FREE.value, event_type.value) is expected_free


def test_unknown_plans_and_types_are_never_allowed() -> None:
    assert not plan_gate.allows_event("GOLD", EventType.MAPPING_COMPLETED)
    assert not plan_gate.allows_event(Plan.ENTERPRISE, "mapping.exploded")


def test_forbidden_events_names_only_the_offending_ones() -> None:
    asked = [EventType.MAPPING_COMPLETED, EventType.MAPPING_ERROR_RESOLVED]
    assert plan_gate.forbidden_events(Plan.FREE, asked) == [EventType.MAPPING_ERROR_RESOLVED]
    assert plan_gate.forbidden_events(Plan.PRO, asked) == []


def test_agent_sinks_need_pro_max() -> None:
    assert plan_gate.plans_allowing_kind(EndpointKind.AGENT_SINK) == [
        Plan.PRO_MAX,
        Plan.ENTERPRISE,
    ]
    assert plan_gate.kinds_not_allowed(Plan.PRO) == [EndpointKind.AGENT_SINK]
    assert plan_gate.kinds_not_allowed(Plan.PRO_MAX) == []
    assert plan_gate.allows_kind(Plan.FREE, EndpointKind.SUBSCRIPTION)
