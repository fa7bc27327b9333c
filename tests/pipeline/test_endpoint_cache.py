"""The sender's endpoint cache on the real database: read once, dropped on every change.

libs/delivery/endpoint_cache.py: PostgreSQL triggers (migration 0005) NOTIFY each change
of an endpoint, organization or agent; a LISTEN connection drops the entries concerned, and
nothing is cached while that connection is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from harness.waiting import eventually
from libs.delivery import endpoint_cache
from libs.delivery.endpoint_cache import EndpointCache, EndpointSettings
from libs.delivery.repository import DeliveryRepository
from libs.domain.plans import Plan
from libs.infra.crypto import decrypt, encrypt
from libs.infra.settings import get_settings
from tests.support.factories import (
    endpoint_settings,
    insert_pending_delivery,
    make_endpoint,
    task_of,
)

URL = "http://127.0.0.1:9/hook"


@pytest.fixture
async def cached(db_pool: asyncpg.Pool) -> AsyncIterator[DeliveryRepository]:
    repository = DeliveryRepository(db_pool, listen_dsn=get_settings().database_url)
    repository.endpoints.start()

    async def listening() -> bool:
        return repository.endpoints.listening

    await eventually(listening, bool, timeout=5.0, interval=0.02)
    yield repository
    await repository.close()


async def endpoint_with_deliveries(
    db_pool: asyncpg.Pool, make_org: Callable, count: int = 2
) -> tuple[str, str, list[str]]:
    org = await make_org(Plan.PRO)
    endpoint = await make_endpoint(db_pool, org.organizationId, URL, ["mapping.completed"])
    deliveries = [
        await insert_pending_delivery(db_pool, org.organizationId, endpoint.id)
        for _ in range(count)
    ]
    return org.organizationId, endpoint.id, deliveries


async def test_deliveries_to_one_endpoint_read_its_row_once(
    db_pool: asyncpg.Pool, make_org: Callable, cached: DeliveryRepository
) -> None:
    _, _, (first, second) = await endpoint_with_deliveries(db_pool, make_org)

    one = await cached.load(await task_of(db_pool, first), 1)
    two = await cached.load(await task_of(db_pool, second), 1)

    assert one is not None and two is not None
    assert decrypt(two.endpoint.url_enc) == URL and two.status == "PENDING"
    assert cached.endpoints.rows_read == 1


async def test_without_a_listener_every_load_reads(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    _, _, (first, second) = await endpoint_with_deliveries(db_pool, make_org)
    repository = DeliveryRepository(db_pool)  # never started: nothing may be cached

    await repository.load(await task_of(db_pool, first), 1)
    await repository.load(await task_of(db_pool, second), 1)

    assert repository.endpoints.rows_read == 2


async def test_an_endpoint_change_reaches_the_next_load(
    db_pool: asyncpg.Pool, make_org: Callable, cached: DeliveryRepository
) -> None:
    _, endpoint_id, (delivery_id, _) = await endpoint_with_deliveries(db_pool, make_org)
    await cached.load(await task_of(db_pool, delivery_id), 1)
    moved = "http://127.0.0.1:9/moved"

    await db_pool.execute(
        "UPDATE endpoints SET url_enc = $2 WHERE id = $1", endpoint_id, encrypt(moved)
    )

    async def moved_seen() -> bool:
        row = await cached.load(await task_of(db_pool, delivery_id), 1)
        return row is not None and decrypt(row.endpoint.url_enc) == moved

    await eventually(moved_seen, bool, timeout=5.0, interval=0.02)


async def test_a_change_no_trigger_announced_is_read_within_the_max_age(
    db_pool: asyncpg.Pool,
    make_org: Callable,
    cached: DeliveryRepository,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restore and replication tools write with triggers off: no NOTIFY, only the age helps.
    monkeypatch.setattr(endpoint_cache, "MAX_AGE_S", 0.5)
    _, endpoint_id, (delivery_id, _) = await endpoint_with_deliveries(db_pool, make_org)
    await cached.load(await task_of(db_pool, delivery_id), 1)
    moved = "http://127.0.0.1:9/moved-quietly"
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE endpoints SET url_enc = $2 WHERE id = $1", endpoint_id, encrypt(moved)
        )

    async def url() -> str:
        row = await cached.load(await task_of(db_pool, delivery_id), 1)
        assert row is not None
        return decrypt(row.endpoint.url_enc)

    assert await url() == URL  # unannounced: the cached entry is still used
    await asyncio.sleep(0.6)
    assert await url() == moved


async def test_an_organization_secret_change_reaches_its_job_webhooks(
    db_pool: asyncpg.Pool, make_org: Callable, cached: DeliveryRepository
) -> None:
    org_id, endpoint_id, (delivery_id, _) = await endpoint_with_deliveries(db_pool, make_org)
    # A per-job webhook without a secret of its own signs with its organization's.
    await db_pool.execute(
        "UPDATE endpoints SET kind = 'JOB_WEBHOOK', secret_enc = NULL WHERE id = $1", endpoint_id
    )
    await db_pool.execute(
        "UPDATE organizations SET webhook_secret_enc = $2 WHERE id = $1",
        org_id,
        encrypt("whsec_old"),
    )

    def signs_with(secret: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            row = await cached.load(await task_of(db_pool, delivery_id), 1)
            return (
                row is not None
                and row.endpoint.secret_enc is not None
                and (decrypt(row.endpoint.secret_enc) == secret)
            )

        return check

    await eventually(signs_with("whsec_old"), bool, timeout=5.0, interval=0.02)
    await db_pool.execute(
        "UPDATE organizations SET webhook_secret_enc = $2 WHERE id = $1",
        org_id,
        encrypt("whsec_new"),
    )
    await eventually(signs_with("whsec_new"), bool, timeout=5.0, interval=0.02)


async def test_a_lost_listener_empties_the_cache_until_it_is_back(
    db_pool: asyncpg.Pool, make_org: Callable, cached: DeliveryRepository
) -> None:
    _, _, (first, second) = await endpoint_with_deliveries(db_pool, make_org)
    await cached.load(await task_of(db_pool, first), 1)
    assert cached.endpoints.rows_read == 1
    old_pid = cached.endpoints.listener_pid

    await db_pool.execute("SELECT pg_terminate_backend($1)", old_pid)

    async def stopped() -> bool:
        return not cached.endpoints.listening

    await eventually(stopped, bool, timeout=5.0, interval=0.02)
    await cached.load(await task_of(db_pool, second), 1)
    assert cached.endpoints.rows_read == 2  # emptied, and not caching while down

    async def back() -> bool:
        return cached.endpoints.listening and cached.endpoints.listener_pid != old_pid

    await eventually(back, bool, timeout=5.0, interval=0.02)
    await cached.load(await task_of(db_pool, first), 1)
    await cached.load(await task_of(db_pool, second), 1)
    assert cached.endpoints.rows_read == 3  # one read, then cached again


async def test_a_read_that_raced_a_change_is_not_kept(
    db_pool: asyncpg.Pool, make_org: Callable, cached: DeliveryRepository
) -> None:
    _, endpoint_id, _ = await endpoint_with_deliveries(db_pool, make_org, count=1)
    cache = cached.endpoints
    read = cache._load

    async def read_then_change(ids: list[str]) -> list[EndpointSettings]:
        rows = await read(ids)  # what was true when the read ran...
        before = cache._generation
        await db_pool.execute("UPDATE endpoints SET name = 'renamed' WHERE id = $1", endpoint_id)

        async def notified() -> bool:
            return cache._generation > before

        await eventually(
            notified, bool, timeout=5.0, interval=0.02
        )  # ...changed before the read came back
        return rows

    cache._load = read_then_change
    await cache.get_many([endpoint_id])
    cache._load = read
    await cache.get_many([endpoint_id])

    assert cache.rows_read == 2  # the raced read was not stored


def settings(**changes: object) -> EndpointSettings:
    """An agent's endpoint with a previous secret whose expiry is not stored, unless changed."""
    return endpoint_settings(**({"agent_id": "agt_1", "previous_secret_enc": b"p"} | changes))


def test_the_previous_secret_signs_only_until_it_expires() -> None:
    now = datetime.now(UTC)
    rotating = settings(previous_secret_expires_at=now + timedelta(seconds=1))
    assert rotating.previous_secret(now) == b"p"
    assert rotating.previous_secret(now + timedelta(seconds=2)) is None
    assert settings().previous_secret(now) is None  # no expiry stored: never signs


async def test_each_notification_drops_what_it_concerns() -> None:
    async def nothing(ids: list[str]) -> list[EndpointSettings]:
        return []

    cache = EndpointCache(nothing)
    entries = {
        "a": settings(id="a"),
        "b": settings(id="b", organization_id="org_2", agent_id=None),
        "c": settings(id="c", organization_id="org_2", agent_id="agt_2"),
    }

    def fill() -> None:
        for each in entries.values():
            cache._store(each, time.monotonic())

    fill()
    cache.invalidate("endpoint:a")
    assert set(cache._entries) == {"b", "c"}
    fill()
    cache.invalidate("organization:org_2")
    assert set(cache._entries) == {"a"}
    fill()
    cache.invalidate("agent:agt_1")
    assert set(cache._entries) == {"b", "c"}
    fill()
    cache.invalidate("something new")
    assert cache._entries == {}
