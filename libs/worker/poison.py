"""Poison messages: what a queue dead-lettered that was not a delivery's normal end (a message
nothing could read, an event for an unknown organization, a message that failed its consumer
`x-delivery-limit` times while the database answered). Each is kept in PostgreSQL
(`poison_messages`), counted (`hookpost_poison_messages_total`, alerted on in
docs/operations.md) and replayable (`hookpost poison replay`); none is dropped.

While a message waits here, the reconciler leaves its event or delivery alone (it would
only fail again); a replay sends it back where it was first published.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import asyncpg
import orjson
from prometheus_client import Counter

from libs.infra.broker.messages import persistent_message
from libs.worker.consumers import Verdict

log = logging.getLogger("hookpost.poison")

KEPT = Counter(
    "hookpost_poison_messages_total",
    "Dead-lettered messages kept as poison, by the dead-letter queue they came from.",
    ["queue"],
)

_KEEP = """
INSERT INTO poison_messages (queue, reason, source_queue, exchange, routing_key, message_id,
                             headers, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
_WAITING = """
SELECT id, queue, reason, source_queue, exchange, routing_key, message_id, received_at
FROM poison_messages WHERE replayed_at IS NULL ORDER BY id
"""
_CLAIM = """
SELECT id, exchange, routing_key, message_id, headers, body FROM poison_messages
WHERE replayed_at IS NULL AND ($1::bigint[] IS NULL OR id = ANY ($1))
ORDER BY id FOR UPDATE SKIP LOCKED
"""
_REPLAYED = "UPDATE poison_messages SET replayed_at = now() WHERE id = $1"
# The broker's own headers (x-death, x-first-death-…): a replayed message starts afresh.
_BROKER_HEADER_PREFIX = "x-"


@dataclass(frozen=True)
class Death:
    """Where a dead-lettered message died and why (its newest `x-death` entry)."""

    reason: str | None
    queue: str | None
    exchange: str
    routing_key: str

    @classmethod
    def of(cls, headers: Mapping[str, Any], fallback_queue: str) -> Death:
        deaths = headers.get("x-death") or []
        newest: Mapping[str, Any] = deaths[0] if deaths else {}
        keys = newest.get("routing-keys") or [""]
        return cls(
            reason=_text(newest.get("reason")),
            queue=_text(newest.get("queue")),
            exchange=_text(newest.get("exchange")) or "",
            # with no x-death at all, send it back to the queue it was found in
            routing_key=_text(keys[0]) or ("" if newest else fallback_queue),
        )


@dataclass(frozen=True)
class Waiting:
    id: int
    queue: str
    reason: str | None
    source_queue: str | None
    exchange: str
    routing_key: str
    message_id: str | None
    received_at: datetime


class PoisonKeeper:
    """Keeps what one dead-letter queue hands it."""

    def __init__(self, pool: asyncpg.Pool, queue: str) -> None:
        self._pool = pool
        self._queue = queue
        self._kept = KEPT.labels(queue)

    async def keep(
        self, body: bytes, headers: Mapping[str, Any], message_id: str | None
    ) -> Verdict:
        death = Death.of(headers, self._queue)
        try:
            await self._pool.execute(
                _KEEP,
                self._queue,
                death.reason,
                death.queue,
                death.exchange,
                death.routing_key,
                message_id,
                orjson.loads(orjson.dumps(headers, default=str)),
                body,
            )
        except Exception:
            log.exception("could not keep a poison message; it stays on its queue")
            return Verdict.REQUEUE
        self._kept.inc()
        log.error(
            "poison message kept",
            extra={"queue": self._queue, "reason": death.reason, "message_id": message_id},
        )
        return Verdict.ACK


async def waiting(pool: asyncpg.Pool) -> list[Waiting]:
    return [Waiting(**dict(row)) for row in await pool.fetch(_WAITING)]


async def replay(pool: asyncpg.Pool, amqp_url: str, ids: Sequence[int] | None) -> int:
    """Publish the waiting poison messages `ids` (None: all of them) back where they were
    first published, each confirmed before it is marked replayed; how many were."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, list(ids) if ids is not None else None)
            for row in rows:
                exchange = await _exchange(channel, row["exchange"])
                headers = {
                    k: v
                    for k, v in (row["headers"] or {}).items()
                    if not k.startswith(_BROKER_HEADER_PREFIX)
                }
                message = persistent_message(row["body"], row["message_id"], headers)
                await exchange.publish(message, row["routing_key"], mandatory=True)
                await conn.execute(_REPLAYED, row["id"])
    return len(rows)


async def _exchange(
    channel: aio_pika.abc.AbstractChannel, name: str
) -> aio_pika.abc.AbstractExchange:
    if not name:
        return channel.default_exchange  # routed straight to the queue named by the key
    return await channel.get_exchange(name, ensure=True)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
