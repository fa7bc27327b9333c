"""The dispatcher's seams: what its logic needs of PostgreSQL, the broker and the first
attempts made here (repository.py, publisher.py, first_attempts.py implement them; the unit
tests fake them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from libs.infra.broker.messages import DeliveryStep, DeliveryTask, EventMessage
from services.dispatcher.rows import (
    EventContext,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
)


class EventLocks(Protocol):
    async def prepare(
        self, events: Sequence[EventMessage], pending_limit: int
    ) -> list[EventContext | None]: ...

    async def drop(self, event_ids: Sequence[str], hour: str) -> dict[str, int]: ...

    async def insert_deliveries(
        self, planned: Sequence[PlannedDeliveries], *, finished: Sequence[str] = ()
    ) -> dict[str, list[PendingDelivery] | None]: ...

    async def finish(self, event_ids: Sequence[str]) -> None: ...

    async def __aenter__(self) -> EventLocks: ...

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None: ...


class Repository(Protocol):
    def event_locks(self, *, wait: bool = False) -> EventLocks: ...

    async def pending_steps(self, event_id: str) -> list[PendingStep]: ...


class Publisher(Protocol):
    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None: ...


class LineReleases(Protocol):
    """libs/delivery/ordering.py LineReleases: the HELD deliveries a dispatched keyed event
    lets go, per (organization id, ordering key)."""

    async def release_keys(self, keys: Iterable[tuple[str, str]]) -> list[DeliveryStep]: ...


class FirstAttemptsHere(Protocol):
    """first_attempts.FirstAttempts: room is reserved per event (the events of one message
    share its slot: `message` stands for it), run gives it back."""

    def reserve(self, deliveries: int, message: object) -> bool: ...

    def release(self, deliveries: int, message: object) -> None: ...

    async def run(self, tasks: Sequence[DeliveryTask], message: object) -> bool: ...
