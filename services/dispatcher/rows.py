"""What the dispatcher's statements (repository.py) take and give back, as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Marks, in the one array of endpoint ids of sql.py's PREPARE, an INACTIVE endpoint
# whose delivery is PARKED (ids never hold a space).
PARKED_SUFFIX = " parked"


@dataclass(frozen=True)
class EventContext:
    plan: str
    stored_organization_id: str | None  # None when this run inserted the event
    dispatched_at: datetime | None
    pending: int  # capped at limit + 1
    endpoint_ids: list[str]
    locked: bool = True  # False: another session holds the event's lock right now
    parked_endpoint_ids: list[str] = field(default_factory=list)  # INACTIVE: kept, not sent
    # A keyed event's: the org's active endpoints with ordered delivery (a superset of the
    # ordered ones among endpoint_ids); empty for an event without a key.
    ordered_endpoint_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlannedDeliveries:
    """One event's new deliveries: one id per endpoint, in the same order, and per endpoint
    the ordering key its delivery waits in line under (None: it goes at once); and those
    kept PARKED for its INACTIVE endpoints (never published)."""

    event_id: str
    delivery_ids: list[str]
    endpoint_ids: list[str]
    ordering_keys: list[str | None] | None = None  # None: no delivery waits in line
    parked_delivery_ids: list[str] = field(default_factory=list)
    parked_endpoint_ids: list[str] = field(default_factory=list)

    def keys(self) -> list[str | None]:
        return self.ordering_keys or [None] * len(self.endpoint_ids)


@dataclass(frozen=True)
class PendingDelivery:
    id: str
    endpoint_id: str
    ordering_key: str | None = None  # a line's head (an ordered endpoint's keyed delivery)


@dataclass(frozen=True)
class PendingStep:
    """A PENDING delivery and how far it got: attempts recorded, and the attempt its
    current schedule started at (a manual retry starts a new one)."""

    id: str
    endpoint_id: str
    attempt_count: int
    schedule_start: int
    ordering_key: str | None = None


def event_context(row: Mapping[str, Any]) -> EventContext | None:
    """An event's row from _PREPARE; None for an unknown organization."""
    if row["plan"] is None:
        return None
    ids = row["endpoint_ids"]
    parked = [i.removesuffix(PARKED_SUFFIX) for i in ids if i.endswith(PARKED_SUFFIX)]
    return EventContext(
        plan=row["plan"],
        stored_organization_id=row["stored_organization_id"],
        dispatched_at=row["dispatched_at"],
        pending=row["pending"],
        endpoint_ids=[i for i in ids if not i.endswith(PARKED_SUFFIX)],
        locked=row["locked"],
        parked_endpoint_ids=parked,
        ordered_endpoint_ids=frozenset(row["ordered_endpoint_ids"] or ()),
    )
