"""The dispatcher's database work; its statements are in sql.py (and nothing else talks to
Postgres for it).

Each statement takes a whole batch of events (handler.py coalesces the events in flight),
so a batch of N events costs the same round trips as one event: prepare + lock, then
deliveries, which also marks dispatched + unlocks the events whose tasks need no confirm
first (first attempts made here), then, only for events whose tasks were published, mark
dispatched + unlock. (Ordered delivery's releases, after a batch with keyed events, have their
SQL with the rest of ordering's, in libs/delivery/ordering.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from libs.domain import endpoint_health
from libs.domain.event_types import EventType
from libs.infra.broker.messages import EventMessage
from services.dispatcher import sql
from services.dispatcher.data_errors import EventDataError, event_data_errors
from services.dispatcher.rows import (
    PARKED_SUFFIX,
    EventContext,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
    event_context,
)

__all__ = [
    "DispatcherRepository",
    "EventDataError",
    "EventLocks",
]


class DispatcherRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def event_locks(self, *, wait: bool = False) -> EventLocks:
        return EventLocks(self._pool, wait=wait)

    async def pending_steps(self, event_id: str) -> list[PendingStep]:
        rows = await self._pool.fetch(sql.PENDING_STEPS, event_id)
        return [
            PendingStep(
                row["id"],
                row["endpoint_id"],
                row["attempt_count"],
                row["schedule_start"],
                row["ordering_key"],
            )
            for row in rows
        ]


class EventLocks:
    """Serializes the dispatch of each event of a batch across messages and replicas.

    Two copies of one event message (a producer's retry, a redelivery) can be handled at
    the same moment; the lock makes the second one wait, then find the event dispatched
    and publish nothing. The locks are session advisory locks on one pooled connection that
    the batch holds from `prepare` until it exits; every statement of the batch runs on it,
    so if it dies (and its locks with it) the batch fails instead of running unlocked.
    Deliveries are inserted outside any long transaction, so a sender never gets a task
    whose row it cannot see yet. A crashed dispatcher's locks die with its connection.

    `wait=False` (a batch): an event whose lock is taken comes back `locked=False` at once.
    `wait=True` (one event): `prepare` waits for the lock.
    """

    def __init__(self, pool: asyncpg.Pool, *, wait: bool) -> None:
        self._pool = pool
        self._wait = wait
        self._conn: asyncpg.Connection | None = None
        self._failed = False  # a failed `prepare` may have left locks it never reported
        self._held: set[str] = set()  # the events whose lock this batch holds

    @property
    def _locked(self) -> bool:
        return self._failed or bool(self._held)

    async def __aenter__(self) -> EventLocks:
        self._conn = await self._pool.acquire()
        return self

    async def prepare(
        self, events: Sequence[EventMessage], pending_limit: int
    ) -> list[EventContext | None]:
        """Store the events that are new and take their locks; per event (in order), None
        when its organization does not exist (then nothing is locked for it)."""
        assert self._conn is not None
        if self._wait and len(events) != 1:
            # Waiting for several locks in one statement could deadlock with another batch.
            raise ValueError("a waiting lock is taken for one event at a time")
        try:
            with event_data_errors():
                rows = await self._conn.fetch(
                    sql.PREPARE,
                    [event.id for event in events],
                    [event.organization_id for event in events],
                    [event.type for event in events],
                    [event.data for event in events],
                    [event.target_endpoint_id for event in events],
                    [event.target_delivery_id for event in events],
                    [event.created_at for event in events],
                    pending_limit,
                    self._wait,
                    sql.SINK_PLANS,
                    list(endpoint_health.NOT_PARKED_REASONS),
                    PARKED_SUFFIX,
                    EventType.ENDPOINT_DISABLED.value,
                    [event.ordering_key for event in events],
                )
        except Exception:
            # Session locks outlive a failed statement, and rows before the failing one
            # may have taken theirs: the exit unlocks (or discards the connection).
            self._failed = True
            raise
        except BaseException:
            # A cancelled wait may still have been granted on the server.
            await self._discard()
            raise
        self._held = {events[row["ord"] - 1].id for row in rows if row["locked"]}
        contexts: list[EventContext | None] = [None] * len(events)
        for row in rows:
            contexts[row["ord"] - 1] = event_context(row)
        return contexts

    async def drop(self, event_ids: Sequence[str], hour: str) -> dict[str, int]:
        """Mark dropped events dispatched and count them per organization and hour; per
        event this run counted (absent: it was dispatched meanwhile), the hour's total."""
        assert self._conn is not None
        with event_data_errors():
            rows = await self._conn.fetch(sql.DROP, list(event_ids), sql.BACKPRESSURE_ACTION, hour)
        return {row["id"]: row["total"] for row in rows}

    async def insert_deliveries(
        self, planned: Sequence[PlannedDeliveries], *, finished: Sequence[str] = ()
    ) -> dict[str, list[PendingDelivery] | None]:
        """Per event, the deliveries to publish, or None when it is already dispatched.

        The events named in `finished` (of `planned`) are also marked dispatched and
        unlocked, as `finish` would: those none of whose tasks must be confirmed first."""
        assert self._conn is not None
        columns: tuple[list[str], list[str], list[str]] = ([], [], [])
        parked: list[bool] = []
        keys: list[str | None] = []
        for each in planned:
            for delivery_ids, endpoint_ids, parks, their_keys in (
                (each.delivery_ids, each.endpoint_ids, False, each.keys()),
                (
                    each.parked_delivery_ids,
                    each.parked_endpoint_ids,
                    True,
                    [None] * len(each.parked_endpoint_ids),
                ),
            ):
                columns[0].extend([each.event_id] * len(endpoint_ids))
                columns[1].extend(delivery_ids)
                columns[2].extend(endpoint_ids)
                parked.extend([parks] * len(endpoint_ids))
                keys.extend(their_keys)
        with event_data_errors():
            rows = await self._conn.fetch(
                sql.INSERT_DELIVERIES,
                [each.event_id for each in planned],
                *columns,
                list(finished),
                parked,
                keys,
            )
        self._held.difference_update(finished)
        found: dict[str, list[PendingDelivery] | None] = {each.event_id: [] for each in planned}
        for row in rows:
            if row["event_id"] is None:
                continue  # the row that runs the unlocks
            deliveries = found[row["event_id"]]
            if not row["open"]:
                found[row["event_id"]] = None
            elif deliveries is not None:
                deliveries.append(
                    PendingDelivery(row["id"], row["endpoint_id"], row["ordering_key"])
                )
        return found

    async def finish(self, event_ids: Sequence[str]) -> None:
        """Mark the events dispatched and release every lock of the batch (its last step)."""
        assert self._conn is not None
        await self._conn.fetchval(sql.FINISH, list(event_ids))
        self._held.clear()
        self._failed = False

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._conn is None:
            return  # discarded
        if self._locked:
            if isinstance(exc, asyncio.CancelledError):
                # The connection may still be busy with the cancelled statement.
                await self._discard()
                return
            try:
                await self._conn.execute(sql.UNLOCK)
            except BaseException:
                await self._discard()
                raise
        await self._pool.release(self._conn)
        self._conn = None

    async def _discard(self) -> None:
        """The pool releases connections without a reset query (libs/infra/db/pool.py), so a
        lock whose unlock failed, or that may have been granted after a cancelled wait, must
        not go back to the pool: closing the connection drops it on the server."""
        assert self._conn is not None
        conn, self._conn = self._conn, None
        conn.terminate()
        await self._pool.release(conn)
