"""Engines count each other through their heartbeats (libs/worker/membership.py)."""

from __future__ import annotations

import asyncpg

from libs.worker.membership import Membership


async def test_each_engine_takes_its_share_of_the_live_ones(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute("DELETE FROM workers")
    first, second = Membership(db_pool, "sender", 60), Membership(db_pool, "sender", 60)
    await first.start()
    assert first.share() == 1.0  # alone
    await second.start()
    assert second.live == 2 and second.share() == 0.5
    await db_pool.execute(  # a replica that stopped beating three heartbeats ago
        "INSERT INTO workers (id, service, host, pid, seen_at)"
        " VALUES ('gone', 'sender', 'h', 1, now() - interval '181 seconds')"
    )
    await second.stop()
    await first._beat()
    assert first.live == 1
    await first.stop()
    assert await db_pool.fetchval("SELECT count(*) FROM workers WHERE id <> 'gone'") == 0


async def test_dispatchers_and_senders_each_share_among_their_own_kind(
    db_pool: asyncpg.Pool,
) -> None:
    """Dispatchers make first attempts and senders the rest: each kind shares an endpoint's
    ceiling among its own (a 2 s endpoint's first attempts had a third of it, split over
    one dispatcher and two senders)."""
    await db_pool.execute("DELETE FROM workers")
    engines = [Membership(db_pool, s, 60) for s in ("dispatcher", "sender", "sender")]
    for engine in engines:
        await engine.start()
    for engine in engines:
        await engine._beat()
    dispatcher, sender = engines[0], engines[1]
    assert dispatcher.share() == 1.0 and sender.share() == 0.5
    for engine in engines:
        await engine.stop()
