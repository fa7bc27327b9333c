"""The token → organization cache: invalidated at once here, expiring within its TTL elsewhere,
bounded, never holding unknown tokens, one SELECT for many concurrent requests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.organizations import repository
from services.api.organizations.service import hash_token
from services.api.organizations.tokens import TokenCache
from tests.api.conftest import assert_error, running_api, subscription_body

SUBS = "/api/v1/webhook-subscriptions"
EVENTS = "/api/v1/events"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every token SELECT the cache sends to PostgreSQL (it still runs for real)."""
    seen: list[bytes] = []
    real = repository.organization_for_token_hash

    async def counting(conn: Any, token_hash: bytes) -> asyncpg.Record | None:
        seen.append(token_hash)
        return await real(conn, token_hash)

    monkeypatch.setattr(repository, "organization_for_token_hash", counting)
    return seen


async def test_a_plan_change_applies_to_the_next_request_in_this_process(
    settings: Settings, make_org: Callable
) -> None:
    # A TTL far longer than the test: only the invalidation can make the new plan visible.
    long_ttl = settings.model_copy(update={"token_cache_ttl_s": 600.0})
    org = await make_org(Plan.FREE)
    gated = subscription_body(events=["MAPPING_ERROR_RESOLVED"])
    async with running_api(long_ttl) as http:
        refused = await http.post(SUBS, headers=bearer(org.apiToken), json=gated)
        assert_error(refused, 403, "FORBIDDEN")  # FREE, and now cached as FREE
        changed = await http.put(
            f"/api/v1/admin/organizations/{org.organizationId}/plan",
            headers=bearer(settings.admin_token or ""),
            json={"plan": "PRO"},
        )
        assert changed.status_code == 200, changed.text
        allowed = await http.post(SUBS, headers=bearer(org.apiToken), json=gated)
        assert allowed.status_code == 201, allowed.text


async def test_a_token_revoked_elsewhere_stops_working_within_the_ttl(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, count_lookups: list[bytes]
) -> None:
    assert settings.token_cache_ttl_s == 1.0  # the default: "about a second"
    org = await make_org()
    event = {"type": "mapping.completed", "data": {}}
    async with running_api(settings) as http:
        assert (
            await http.post(EVENTS, headers=bearer(org.apiToken), json=event)
        ).status_code == 202
        # Revoked by an operator or another replica: this process is not told.
        await db_pool.execute(
            "DELETE FROM api_tokens WHERE token_hash = $1", hash_token(org.apiToken)
        )
        cached = await http.post(EVENTS, headers=bearer(org.apiToken), json=event)
        assert cached.status_code == 202  # within the TTL, from the cache
        assert len(count_lookups) == 1
        await asyncio.sleep(settings.token_cache_ttl_s + 0.1)
        assert_error(
            await http.post(EVENTS, headers=bearer(org.apiToken), json=event), 401, "UNAUTHORIZED"
        )


async def test_an_unknown_token_is_never_cached(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool
) -> None:
    """A rotated-in token works at once, even if it was tried (and refused) before it existed."""
    org = await make_org()
    new_token = f"hpk_{secrets.token_urlsafe(24)}"
    event = {"type": "mapping.completed", "data": {}}
    async with running_api(settings) as http:
        refused = await http.post(EVENTS, headers=bearer(new_token), json=event)
        assert_error(refused, 401, "UNAUTHORIZED")
        await repository.insert_token(db_pool, hash_token(new_token), org.organizationId)
        accepted = await http.post(EVENTS, headers=bearer(new_token), json=event)
        assert accepted.status_code == 202, accepted.text


async def test_the_cache_is_bounded_and_holds_only_found_tokens(
    db_pool: asyncpg.Pool, make_org: Callable, count_lookups: list[bytes]
) -> None:
    cache = TokenCache(db_pool, ttl_s=600.0, max_entries=3)
    orgs = [await make_org() for _ in range(5)]
    for org in orgs:
        assert (await cache.organization(org.apiToken)).id == org.organizationId  # type: ignore[union-attr]
    assert len(cache) == 3
    for _ in range(50):  # an attacker's random tokens: each one looked up, none kept
        assert await cache.organization(f"hpk_{secrets.token_urlsafe(24)}") is None
    assert len(cache) == 3
    count_lookups.clear()
    for org in orgs[2:]:  # the newest three are still cached
        await cache.organization(org.apiToken)
    assert count_lookups == []
    await cache.organization(orgs[0].apiToken)  # the oldest was evicted
    assert count_lookups == [hash_token(orgs[0].apiToken)]


async def test_concurrent_requests_with_one_token_share_one_lookup(
    db_pool: asyncpg.Pool, make_org: Callable, count_lookups: list[bytes]
) -> None:
    cache = TokenCache(db_pool, ttl_s=600.0)
    org = await make_org(Plan.PRO)
    found = await asyncio.gather(*(cache.organization(org.apiToken) for _ in range(20)))
    assert {(o.id, o.plan) for o in found if o is not None} == {(org.organizationId, Plan.PRO)}
    assert len(count_lookups) == 1


async def test_a_lookup_running_across_an_invalidation_is_not_kept(
    db_pool: asyncpg.Pool, make_org: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may have read the org before the change committed: it answers its own callers, but
    the next request looks again."""
    cache = TokenCache(db_pool, ttl_s=600.0)
    org = await make_org()
    real = repository.organization_for_token_hash
    release = asyncio.Event()

    async def slow(conn: Any, token_hash: bytes) -> asyncpg.Record | None:
        row = await real(conn, token_hash)
        await release.wait()
        return row

    monkeypatch.setattr(repository, "organization_for_token_hash", slow)
    running = asyncio.ensure_future(cache.organization(org.apiToken))
    await asyncio.sleep(0.05)
    cache.invalidate_org(org.organizationId)
    release.set()
    assert (await running) is not None
    assert len(cache) == 0
