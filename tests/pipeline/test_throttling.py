"""A receiver that asks for less: a 429's Retry-After (seconds, or an HTTP date) is waited
out, and a 429 uses up none of the door's attempts (libs/domain/retry_policy.py decide).

Real waits (scale 1): a Retry-After waits in the real delay ladder, as long as it says.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from itertools import pairwise

import asyncpg
import pytest

from harness.receiver import Receiver
from harness.receiver.behaviours import RetryAfter
from libs.infra.broker.messages import EventMessage
from tests.pipeline.conftest import one_of_each
from tests.support.factories import attempts_of, delivered, event_message, make_endpoint
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def real_tiers(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async for pipe in one_of_each(test_env, "throttle", HOOKPOST_RETRY_DELAY_SCALE="1.0"):
        yield pipe


async def _one_event_to(pipe: Pipeline, make_org, db_pool: asyncpg.Pool, url: str) -> EventMessage:
    """A new org with one endpoint at `url`, and one event published to it."""
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, url, ["mapping.completed"])
    event = event_message(org.organizationId)
    await pipe.publish(event)
    return event


async def test_429s_wait_their_retry_after_and_use_up_no_attempt(
    real_tiers: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """Five 429s, then 200: past a webhook's four attempts, and it still arrives."""
    event = await _one_event_to(
        real_tiers, make_org, db_pool, receiver.behave("/busy", RetryAfter(seconds=1, times=5))
    )

    requests = await receiver.wait_for("/busy", 6, timeout=30)
    [delivery] = await delivered(db_pool, event.id)
    assert delivery["status"] == "SUCCEEDED"
    attempts = await attempts_of(db_pool, delivery["id"])
    assert [a["http_status"] for a in attempts] == [429] * 5 + [200]
    gaps = [b.received_at - a.received_at for a, b in pairwise(requests)]
    assert min(gaps) >= 0.95, gaps  # none before its Retry-After had passed


async def test_a_retry_after_between_tiers_is_waited_as_said_not_up_to_the_next_tier(
    real_tiers: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """2 s lies between the 1 s and 5 s tiers: the retry comes 2 s later, not 5."""
    event = await _one_event_to(
        real_tiers, make_org, db_pool, receiver.behave("/busy-2s", RetryAfter(seconds=2, times=1))
    )

    first, second = await receiver.wait_for("/busy-2s", 2, timeout=30)
    assert 2.0 <= second.received_at - first.received_at < 3.0
    [delivery] = await delivered(db_pool, event.id)
    assert delivery["status"] == "SUCCEEDED"


async def test_a_retry_after_date_is_waited_out(
    real_tiers: Pipeline, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    event = await _one_event_to(
        real_tiers,
        make_org,
        db_pool,
        receiver.behave("/busy-until", RetryAfter(seconds=1, http_date=True)),
    )

    first, second = await receiver.wait_for("/busy-until", 2, timeout=30)
    # The receiver said: not before this second (an HTTP date has whole seconds).
    assert second.received_at >= math.floor(first.received_at + 1)
    [delivery] = await delivered(db_pool, event.id)
    assert delivery["status"] == "SUCCEEDED"
