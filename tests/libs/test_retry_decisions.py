"""Retry decisions (libs/domain/retry_policy.py `decide`): each door's schedule, 429s that use
up no attempt, a receiver's Retry-After kept as said; and reading Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.delivery.http_client import retry_after
from libs.domain.retry_policy import (
    MAX_THROTTLED,
    WEBHOOK_POLICY,
    Decision,
    Next,
    agent_sink_policy,
    decide,
    tier_at_least,
)


def test_decide_walks_the_webhook_schedule_then_exhausts() -> None:
    assert decide(WEBHOOK_POLICY, True, 200, 1, 1).next is Next.SUCCEEDED
    assert decide(WEBHOOK_POLICY, False, 500, 1, 1) == decide(WEBHOOK_POLICY, False, None, 1, 1)
    assert [decide(WEBHOOK_POLICY, False, 500, n, 1).delay_s for n in (1, 2, 3)] == [60, 300, 1800]
    assert decide(WEBHOOK_POLICY, False, 400, 2, 1).next is Next.RETRY  # 4xx retried
    assert decide(WEBHOOK_POLICY, False, 503, 4, 1).next is Next.EXHAUSTED


def test_decide_counts_from_the_schedule_start_after_a_manual_retry() -> None:
    # Attempts 1-4 died; a manual retry opened a new schedule at attempt 5.
    assert decide(WEBHOOK_POLICY, False, 500, 5, 5).delay_s == 60
    assert decide(WEBHOOK_POLICY, False, 500, 8, 5).next is Next.EXHAUSTED


def test_decide_agent_sink_4xx_is_final() -> None:
    policy = agent_sink_policy(2)
    assert decide(policy, False, 422, 1, 1).next is Next.FAILED
    assert decide(policy, False, 500, 1, 1).delay_s == 5
    assert decide(policy, False, 500, 3, 1).next is Next.EXHAUSTED


def test_a_429_uses_up_no_attempt_and_waits_its_retry_after_or_the_schedule() -> None:
    # webhook schedule: 4 attempts, 1m, 5m, 30m; attempt 2 gets a 429 after one failure
    throttled = decide(WEBHOOK_POLICY, False, 429, 2, 1)
    assert throttled == Decision(Next.RETRY, 300, throttled=True)  # the schedule's own wait
    # its Retry-After, as said: 7 s (counted in the 30 s tier), not the 30 s tier's wait
    assert decide(WEBHOOK_POLICY, False, 429, 2, 1, retry_after_s=7) == Decision(
        Next.RETRY, 30, throttled=True, exact_wait_s=7
    )
    # a Retry-After of 0 would be asked again at once: the shortest tier's second
    assert decide(WEBHOOK_POLICY, False, 429, 2, 1, retry_after_s=0).wait_s == 1
    # the failure after it is still the schedule's second: 5m, not 30m
    assert decide(WEBHOOK_POLICY, False, 500, 3, 1, throttled_before=1).delay_s == 300
    # with two 429s in between, attempt 6 is only the schedule's fourth: exhausted
    assert decide(WEBHOOK_POLICY, False, 500, 6, 1, throttled_before=2).next is Next.EXHAUSTED
    assert decide(WEBHOOK_POLICY, False, 500, 5, 1, throttled_before=2).delay_s == 1800


def test_past_ten_429s_a_429_counts_as_a_failure() -> None:
    # ten 429s, then three failures: attempt 14 is the schedule's fourth and last
    decision = decide(WEBHOOK_POLICY, False, 429, 14, 1, throttled_before=MAX_THROTTLED)
    assert not decision.throttled and decision.next is Next.EXHAUSTED
    assert decide(WEBHOOK_POLICY, False, 429, 11, 1, throttled_before=10) == Decision(
        Next.RETRY, 60
    )
    sink = agent_sink_policy(2)
    assert decide(sink, False, 429, 1, 1).throttled  # not the sink's "4xx ends it"
    assert decide(sink, False, 429, 11, 1, throttled_before=10).next is Next.FAILED


def test_a_503_waits_at_least_its_retry_after() -> None:
    assert decide(WEBHOOK_POLICY, False, 503, 1, 1, retry_after_s=100).wait_s == 100
    assert decide(WEBHOOK_POLICY, False, 503, 1, 1, retry_after_s=10).wait_s == 60  # the tier's
    assert decide(WEBHOOK_POLICY, False, 503, 1, 1, retry_after_s=10).exact_wait_s is None
    assert decide(WEBHOOK_POLICY, False, 503, 4, 1, retry_after_s=10).next is Next.EXHAUSTED


def test_retry_after_in_seconds_or_as_a_date_is_capped() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()
    assert retry_after("120", 3600, now) == 120
    assert retry_after("Sun, 06 Dec 2026 12:02:00 GMT", 3600, now) == 120
    assert retry_after("Sun, 06 Dec 2026 11:00:00 GMT", 3600, now) == 0  # already past
    assert retry_after("99999", 3600, now) == 3600
    assert retry_after("soon", 3600, now) is None and retry_after(None, 3600, now) is None
    assert [tier_at_least(s) for s in (0, 1, 2, 31, 3600, 9999)] == [1, 1, 5, 60, 3600, 3600]
