"""Which engines are running: each process that runs the delivery engine keeps a heartbeat
row in `workers`, and counts the live ones of its own kind (dispatchers, which make first
attempts, or senders, which make the rest), so that every engine takes its share of what
the engines of its kind share (an endpoint's concurrency ceiling and rate limit,
libs/delivery/limits.py).

A row not seen for three heartbeats is not counted (a crashed process stops counting
within that time) and is deleted after an hour. Until its first count a process assumes it
is alone; if PostgreSQL does not answer, the last count stands.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid

import asyncpg

from libs.infra.periodic import Periodic

log = logging.getLogger("hookpost.membership")

_BEAT = """
INSERT INTO workers (id, service, host, pid) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET seen_at = now()
"""
_LIVE = """
SELECT count(*) FROM workers WHERE service = $2 AND seen_at > now() - make_interval(secs => $1)
"""
_FORGET = "DELETE FROM workers WHERE seen_at < now() - interval '1 hour'"
_LEAVE = "DELETE FROM workers WHERE id = $1"


class Membership:
    def __init__(self, pool: asyncpg.Pool, service: str, interval_s: float = 10.0) -> None:
        self._pool = pool
        self._service = service
        self._interval_s = interval_s
        self._id = f"{service}-{uuid.uuid4().hex[:12]}"
        self._live = 1  # engines of this kind, this one included
        self._loop = Periodic("membership", interval_s, self._beat, first_after_s=interval_s)

    @property
    def live(self) -> int:
        """The engines of this one's kind running, itself included."""
        return self._live

    def share(self) -> float:
        return 1.0 / self._live

    async def start(self) -> None:
        await self._beat()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        with contextlib.suppress(Exception):
            await self._pool.execute(_LEAVE, self._id)

    async def _beat(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    _BEAT, self._id, self._service, socket.gethostname(), os.getpid()
                )
                live = await conn.fetchval(_LIVE, self._interval_s * 3, self._service)
                self._live = max(1, live)
                await conn.execute(_FORGET)
        except Exception:
            log.warning("could not renew this worker's heartbeat", exc_info=True)
