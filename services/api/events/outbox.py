"""The outbox relay: republish events whose publish was never confirmed.

The API publishes each event right after storing it; this loop only catches what that
missed (broker down, timeout, crash between commit and publish). It must outlive broker
and database outages, so every failure is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from libs.infra.broker.topology import Topology
from libs.infra.periodic import Periodic
from services.api.broker import BrokerLink
from services.api.events import repository
from services.api.events.publishing import publish_event, to_message
from services.api.metrics import EVENTS_PUBLISHED, PUBLISH_FAILURES

log = logging.getLogger("hookpost.api.outbox")

BATCH_SIZE = 500


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: BrokerLink,
        topology: Topology,
        interval_s: float,
        grace_s: float,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._topology = topology
        self._grace_s = grace_s
        self._batch_size = batch_size
        self._loop = Periodic("outbox-relay", interval_s, self.relay_once)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def relay_once(self) -> int:
        """Publish one batch of overdue events; return how many the broker confirmed."""
        if not await self._broker.is_connected():
            return 0  # nothing could be confirmed; do not hold row locks for nothing
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_unpublished(conn, self._grace_s, self._batch_size)
            if not rows:
                return 0
            # Concurrent publishes share the channel; confirms come back per message.
            results = await asyncio.gather(
                *(
                    publish_event(self._broker, self._topology, to_message(r), r["trace_context"])
                    for r in rows
                ),
                return_exceptions=True,
            )
            confirmed = [r["id"] for r, result in zip(rows, results, strict=True) if result is None]
            await repository.mark_published(conn, confirmed)
        failed = len(rows) - len(confirmed)
        if confirmed:
            EVENTS_PUBLISHED.labels(path="relay").inc(len(confirmed))
            log.info("outbox relay published events", extra={"count": len(confirmed)})
        if failed:
            PUBLISH_FAILURES.labels(what="event").inc(failed)
        return len(confirmed)
