"""The rows the dispatcher's statements (repository.py) take and give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EventContext:
    plan: str
    stored_organization_id: str | None  # None when this run inserted the event
    dispatched_at: datetime | None
    pending: int  # capped at limit + 1
    endpoint_ids: list[str]
    locked: bool = True  # False: another session holds the event's lock right now
    parked_endpoint_ids: list[str] = field(default_factory=list)  # INACTIVE: kept, not sent


@dataclass(frozen=True)
class PlannedDeliveries:
    """One event's new deliveries: one id per endpoint, in the same order; and those kept
    PARKED for its INACTIVE endpoints (never published)."""

    event_id: str
    delivery_ids: list[str]
    endpoint_ids: list[str]
    parked_delivery_ids: list[str] = field(default_factory=list)
    parked_endpoint_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PendingDelivery:
    id: str
    endpoint_id: str


@dataclass(frozen=True)
class PendingStep:
    """A PENDING delivery and how far it got: attempts recorded, and the attempt its
    current schedule started at (a manual retry starts a new one)."""

    id: str
    endpoint_id: str
    attempt_count: int
    schedule_start: int
