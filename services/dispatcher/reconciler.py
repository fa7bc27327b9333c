"""The reconciler: PostgreSQL is the truth, the broker only carries work in motion.

Whatever the broker loses, dead-letters or never received (a long database outage, a queue
lost with a node, a crash between a commit and its publish), PostgreSQL still says what is
due. Every dispatcher replica runs this loop; each pass re-drives, in batches:

- an event accepted but not dispatched `redrive_events_after_s` after it last left for the
  broker (or was stored): its message is published again to `<prefix>.events`;
- a PENDING delivery `redrive_deliveries_after_s` past its due time (its first attempt, its
  retry, or its dead letter): the step it is at is published again to the sender queue,
  whose engine then does exactly what is still to do (an attempt already recorded is not
  POSTed again; a retry already due goes out at once; no attempt left: the dead letter).

It works with the normal path, never against it: the dispatcher and the engine take a copy
of work already done as a duplicate (at-least-once; a second delivery row cannot exist), and
a re-driven row's clock restarts, so it is re-driven again only if it stays stuck. Several
replicas share the work without overlap (overdue.py). Re-driven work is counted: each one is
a message the broker lost, or a delivery stuck far longer than it should be.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker
from prometheus_client import Counter

from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryStep, DeliveryTask, EventMessage
from libs.infra.broker.topology import Topology
from libs.infra.periodic import Periodic
from libs.infra.settings import Settings
from services.dispatcher import overdue

log = logging.getLogger("hookpost.reconciler")

BATCH = 500
REDRIVEN = Counter(
    "hookpost_reconciler_redriven_total",
    "Overdue work the reconciler published again, by what it was (event | delivery | line:"
    " an ordered line's next delivery, released).",
    ["what"],
)
PASSES = Counter("hookpost_reconciler_passes_total", "Reconciler passes that completed.")


@dataclass(frozen=True)
class Redriven:
    events: int
    deliveries: int
    lines: int = 0  # ordered lines left without a head, released


class LineReleases(Protocol):
    """libs/delivery/ordering.py LineReleases."""

    async def stuck_lines(self, after_s: float, limit: int) -> list[tuple[str, str]]: ...

    async def release(self, lines: Iterable[tuple[str, str]]) -> list[DeliveryStep]: ...


class StepPublisher(Protocol):
    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None: ...


class Reconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: RabbitBroker,
        topology: Topology,
        steps: StepPublisher,
        settings: Settings,
        releases: LineReleases | None = None,
    ) -> None:
        self._pool = pool
        self._releases = releases
        self._broker = broker
        self._topology = topology
        self._steps = steps
        self._settings = settings
        self._events_exchange: AbstractExchange | None = None
        # First one interval after start: a replica starting up has its own backlog.
        interval = settings.reconcile_interval_s
        self._loop = Periodic("reconciler", interval, self.run_once, first_after_s=interval)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> Redriven:
        redriven = Redriven(
            await self._redrive_events(),
            await self._redrive_deliveries(),
            await self._release_stuck_lines(),
        )
        PASSES.inc()
        return redriven

    async def _release_stuck_lines(self) -> int:
        """Ordered lines with HELD deliveries and none PENDING for longer than the bound:
        their release never ran (a crash between a head's end and its release). Releasing
        a line that is only waiting for an earlier event changes nothing (ordering.py)."""
        if self._releases is None:
            return 0
        after_s = self._settings.redrive_deliveries_after_s
        lines = await self._releases.stuck_lines(after_s, BATCH)
        if not lines:
            return 0
        steps = await self._releases.release(lines)
        if steps:
            # Promoted rows are due now: a publish lost here is re-driven as overdue.
            await self._steps.publish_steps(steps)
            REDRIVEN.labels("line").inc(len(steps))
            log.warning("released ordered lines left without a head", extra={"count": len(steps)})
        return len(steps)

    async def _redrive_events(self) -> int:
        after_s = self._settings.redrive_events_after_s
        return await self._redrive(overdue.EVENTS, after_s, self._publish_event)

    async def _redrive_deliveries(self) -> int:
        after_s = self._settings.redrive_deliveries_after_s
        return await self._redrive(overdue.DELIVERIES, after_s, self._publish_step)

    async def _redrive(
        self,
        kind: overdue.Overdue,
        after_s: float,
        publish: Callable[[asyncpg.Record], Awaitable[None]],
    ) -> int:
        """Claim a batch, publish each row's message, restart the clocks of the confirmed."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await overdue.claim(conn, kind, after_s, BATCH)
            sent = await _published(rows, publish)
            if sent:
                await overdue.restart_clocks(conn, kind, sent)
        if sent:
            REDRIVEN.labels(kind.what).inc(len(sent))
            log.warning("re-drove overdue work", extra={"what": kind.what, "count": len(sent)})
        return len(sent)

    async def _publish_event(self, row: asyncpg.Record) -> None:
        event = EventMessage.model_validate(dict(row))
        if self._events_exchange is None:
            self._events_exchange = await self._broker.declare_exchange(
                self._topology.events_exchange
            )
        name = self._events_exchange.name
        # Continues the trace of the request that accepted the event, as the outbox relay does.
        with telemetry.producer_span(
            f"{name} publish",
            name,
            event.type,
            parent=row["trace_context"],
            event_id=event.id,
            organization_id=event.organization_id,
        ) as trace_headers:
            await self._events_exchange.publish(
                event.message(trace_headers), event.type, mandatory=True
            )

    async def _publish_step(self, row: asyncpg.Record) -> None:
        task = DeliveryTask.from_row(row, self._settings.payload_cap_bytes)
        # The step it is at: attempt 1 if none was made, else the last one recorded (the
        # engine then does what follows it).
        step = DeliveryStep(task, max(row["attempt_count"], 1), row["schedule_start"])
        await self._steps.publish_steps([step])


async def _published(
    rows: Sequence[asyncpg.Record], publish: Callable[[asyncpg.Record], Awaitable[None]]
) -> list[str]:
    """The ids of the rows whose message the broker confirmed (each published on its own)."""
    results = await asyncio.gather(*(publish(row) for row in rows), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        log.warning("could not re-drive some overdue work", extra={"count": len(failed)})
    return [row["id"] for row, r in zip(rows, results, strict=True) if r is None]
