"""A fresh environment: its database is created and migrated, then dropped; the broker
objects of its prefix, at every retry scale it ran with, are deleted."""

from __future__ import annotations

import uuid

import aio_pika
import asyncpg
import pytest

from harness.env import FreshEnv
from libs.infra.broker.topology import Topology


async def queue_exists(amqp_url: str, name: str) -> bool:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
            return True
        except aio_pika.exceptions.ChannelClosed:
            return False


async def test_create_migrate_drop_and_clean_the_prefix() -> None:
    env = FreshEnv(f"hookpost_harness_{uuid.uuid4().hex[:8]}")
    scaled = env.retry_scale(0.5)
    assert scaled == {"HOOKPOST_RETRY_DELAY_SCALE": "0.5"}
    assert env.env()["HOOKPOST_BROKER_PREFIX"] == env.name
    await env.create_database()
    try:
        conn = await asyncpg.connect(env.dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
        finally:
            await conn.close()
        # a tier queue of the 0.5 scale, as a service running with it would declare
        tier = Topology(env.name, 0.5).retry_queues()[0].name
        connection = await aio_pika.connect(env.amqp_url)
        async with connection:
            await (await connection.channel()).declare_queue(tier, durable=True)
        assert await queue_exists(env.amqp_url, tier)
        await env.delete_broker_objects()
        assert not await queue_exists(env.amqp_url, tier)
    finally:
        await env.drop_database()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(env.dsn)
