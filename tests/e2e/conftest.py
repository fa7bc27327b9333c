"""The whole platform as real subprocesses: api, dispatcher and two senders."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from harness.stack import Stack
from tests.support.stacks import stack_on

# 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: a DEAD delivery in about 5 s.
E2E_RETRY_SCALE = "0.002"


@pytest.fixture(scope="module")
def stack_env(test_env: dict[str, str], db_pool: object) -> dict[str, str]:
    # db_pool: the database exists and is migrated before any service starts.
    return {**test_env, "HOOKPOST_RETRY_DELAY_SCALE": E2E_RETRY_SCALE}


@pytest.fixture(scope="module")
async def stack(stack_env: dict[str, str]) -> AsyncIterator[Stack]:
    services = stack_on(stack_env)
    try:
        yield await services.start(dispatchers=1, senders=2)
    finally:
        await services.stop_all()


@pytest.fixture
async def api_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client
