"""What a running API process holds: settings, the database pool, the broker link, and what
is built on them (the event outbox, the token cache, the ingest and /test rate limits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from services.api.broker import BrokerLink
from services.api.events.service import EventOutbox
from services.api.organizations.tokens import TokenCache
from services.api.rate_limit import OrgRateLimiter

TEST_BURST_PER_ENDPOINT = 5
TEST_BURST_PER_ORG = 20


@dataclass
class ApiState:
    settings: Settings
    pool: asyncpg.Pool
    broker: BrokerLink
    topology: Topology
    events_limiter: OrgRateLimiter = field(init=False)
    test_limiter_per_endpoint: OrgRateLimiter = field(init=False)
    test_limiter_per_org: OrgRateLimiter = field(init=False)
    tokens: TokenCache = field(init=False)
    outbox: EventOutbox = field(init=False)

    def __post_init__(self) -> None:
        self.events_limiter = OrgRateLimiter(
            self.settings.events_rate_per_s, self.settings.events_rate_burst
        )
        settings = self.settings
        self.test_limiter_per_endpoint = OrgRateLimiter(
            settings.test_sends_per_endpoint_per_min / 60, TEST_BURST_PER_ENDPOINT
        )
        self.test_limiter_per_org = OrgRateLimiter(
            settings.test_sends_per_org_per_min / 60, TEST_BURST_PER_ORG
        )
        self.tokens = TokenCache(self.pool, self.settings.token_cache_ttl_s)
        self.outbox = EventOutbox(
            self.pool,
            self.broker,
            self.topology,
            self.settings.outbox_relay_grace_s,
            hold_key=self.settings.chaos_hold_key,
        )


# async: FastAPI runs a plain `def` dependency in the threadpool, a thread hop per request.
async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]
