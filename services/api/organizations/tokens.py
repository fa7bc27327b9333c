"""Bearer token → organization, cached in this process for about a second.

Every API request authenticates, and the lookup was a SELECT per request. The cache keeps
what a token resolved to for `ttl_s` (HOOKPOST_TOKEN_CACHE_TTL_S, default 1 s):

- Why a TTL and this short: a token revoked, an org deleted or a plan changed elsewhere (by
  another api replica, or an operator in SQL) must stop counting within about a second on
  every replica, with no messaging between replicas. A busy token still costs one SELECT a
  second instead of one per request. 0 turns the cache off.
- Changes made through this process take effect at once: whatever changes an org or its
  tokens calls `invalidate_org` after its commit (today: the admin plan change; the api
  has no token rotation, revocation or org deletion of its own yet).
- Only tokens that were found are cached, in insertion order and at most `max_entries` of
  them: an attacker sending random tokens costs a SELECT each (as before) but no memory.
- Concurrent requests with one uncached token share one SELECT.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from libs.domain.plans import Plan
from services.api.organizations import repository
from services.api.organizations.service import hash_token

MAX_ENTRIES = 10_000  # a few MB at most


@dataclass(frozen=True, slots=True)
class CurrentOrg:
    id: str
    plan: Plan


@dataclass(frozen=True, slots=True)
class _Entry:
    org: CurrentOrg
    expires: float


class TokenCache:
    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}  # insertion order = age: the oldest goes first
        self._lookups: dict[bytes, asyncio.Future[CurrentOrg | None]] = {}
        # Bumped by every invalidation: a lookup that started before one must not store.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def organization(self, token: str) -> CurrentOrg | None:
        """The token's org, or None for a token that does not exist (never cached)."""
        token_hash = hash_token(token)
        entry = self._entries.get(token_hash)
        if entry is not None:
            if entry.expires > self._clock():
                return entry.org
            del self._entries[token_hash]
        lookup = self._lookups.get(token_hash)
        if lookup is None:
            # A task of its own: a caller that gives up does not fail the others waiting.
            lookup = asyncio.ensure_future(self._lookup(token_hash))
            self._lookups[token_hash] = lookup
            lookup.add_done_callback(lambda done: self._lookup_done(token_hash, done))
        return await asyncio.shield(lookup)

    def invalidate_org(self, org_id: str) -> None:
        """Forget every token of this org; lookups already running will not be stored."""
        self._generation += 1
        self._lookups.clear()  # later callers start a fresh lookup instead of joining one
        for token_hash in [h for h, e in self._entries.items() if e.org.id == org_id]:
            del self._entries[token_hash]

    async def _lookup(self, token_hash: bytes) -> CurrentOrg | None:
        generation = self._generation
        row = await repository.organization_for_token_hash(self._pool, token_hash)
        if row is None:
            return None
        org = CurrentOrg(id=row["id"], plan=Plan(row["plan"]))
        if self._ttl_s > 0 and generation == self._generation:
            self._store(token_hash, org)
        return org

    def _store(self, token_hash: bytes, org: CurrentOrg) -> None:
        self._entries.pop(token_hash, None)
        self._entries[token_hash] = _Entry(org, self._clock() + self._ttl_s)
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]

    def _lookup_done(self, token_hash: bytes, done: asyncio.Future[CurrentOrg | None]) -> None:
        if self._lookups.get(token_hash) is done:
            del self._lookups[token_hash]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone (no "never retrieved")
