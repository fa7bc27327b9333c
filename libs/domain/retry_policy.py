"""Where the retry tier is chosen: attempts, delays and the 4xx rule of each front door, and
what follows an attempt (`decide`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from libs.domain.endpoint_kinds import DeliveryStatus, EndpointKind

# The only delays a retry may use: one TTL queue per tier (SPEC §1). 1 s and 3600 s are for
# Retry-After (the longest honoured); a step its endpoint has no room for waits in the delay
# ladder instead (libs/infra/broker/delay_ladder.py).
RETRY_TIERS_S: tuple[int, ...] = (1, 5, 30, 60, 300, 1800, 3600)
# 429s per delivery (per retry schedule) that do not use up one of its door's attempts.
MAX_THROTTLED = 10


def tier_at_least(seconds: float) -> int:
    """The shortest tier that waits at least `seconds` (the longest one past it)."""
    return next((tier for tier in RETRY_TIERS_S if tier >= seconds), RETRY_TIERS_S[-1])


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    delays_s: tuple[int, ...]  # the wait after failure N is delays_s[N-1]
    retry_4xx: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.delays_s) - set(RETRY_TIERS_S)
        if unknown:
            raise ValueError(f"delays {sorted(unknown)} have no retry tier")
        if len(self.delays_s) < self.max_attempts - 1:
            raise ValueError("a policy needs a delay for every retry")

    def delay_after(self, attempt_in_schedule: int) -> int | None:
        """The tier to wait in after this failed attempt, or None when none are left."""
        if attempt_in_schedule >= self.max_attempts:
            return None
        return self.delays_s[attempt_in_schedule - 1]

    def backoff_at(self, attempt_in_schedule: int) -> int:
        """The wait the schedule has at this point, even past its last attempt (a 429 that
        came without Retry-After waits as a failure would, without using the attempt)."""
        return self.delays_s[min(max(attempt_in_schedule, 1), len(self.delays_s)) - 1]

    def retries(self, http_status: int | None) -> bool:
        """Whether a failed attempt with this answer may be tried again at all."""
        if http_status is not None and 400 <= http_status < 500:
            return self.retry_4xx
        return True


WEBHOOK_POLICY = RetryPolicy(max_attempts=4, delays_s=(60, 300, 1800))
JOB_WEBHOOK_POLICY = RetryPolicy(max_attempts=5, delays_s=(5, 30, 300, 1800))
AGENT_SINK_DELAYS_S = (5, 30, 300)


def agent_sink_policy(retry_failed_push: int) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=1 + retry_failed_push, delays_s=AGENT_SINK_DELAYS_S, retry_4xx=False
    )


def policy_for(kind: EndpointKind, retry_failed_push: int = 2) -> RetryPolicy:
    match kind:
        case EndpointKind.JOB_WEBHOOK | EndpointKind.REPORT_WEBHOOK:
            # Seed 004: immediate, 5 s, 30 s, 5 min, 30 min, then abandoned.
            return JOB_WEBHOOK_POLICY
        case EndpointKind.AGENT_SINK:
            return agent_sink_policy(retry_failed_push)
        case _:
            return WEBHOOK_POLICY


def scaled_ms(delay_s: float, scale: float) -> int:
    """The TTL of a tier after HOOKPOST_RETRY_DELAY_SCALE (at least 1 ms)."""
    return max(1, round(delay_s * 1000 * scale))


def policy_for_endpoint(kind: str, config: Mapping[str, Any]) -> RetryPolicy:
    """An endpoint row's policy: its kind (an unknown one retries as a webhook does), and for
    an agent sink its agent's `retry_failed_push` (0..3, default 2)."""
    try:
        endpoint_kind = EndpointKind(kind)
    except ValueError:
        endpoint_kind = EndpointKind.DESTINATION
    retry_failed_push = config.get("retryFailedPush", config.get("retry_failed_push", 2))
    try:
        retry_failed_push = max(0, min(3, int(retry_failed_push)))
    except (TypeError, ValueError):
        retry_failed_push = 2
    return policy_for(endpoint_kind, retry_failed_push)


class Next(StrEnum):
    """What follows an attempt."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # a non-retryable answer (agent sinks' 4xx): ended for good
    RETRY = "RETRY"  # wait in a retry tier, then try again
    EXHAUSTED = "EXHAUSTED"  # no attempt left: dead-lettered, then DEAD
    PARKED = "PARKED"  # the answer disabled its endpoint (410 Gone): kept for a recover


@dataclass(frozen=True)
class Decision:
    next: Next
    delay_s: int | None = None  # the retry tier, for RETRY
    throttled: bool = False  # a 429 that did not use up an attempt
    # a receiver's Retry-After that sets the wait: kept as it is (the delay ladder), not
    # rounded up to a tier (a Retry-After of 7 s waited 30)
    exact_wait_s: float | None = None

    @property
    def wait_s(self) -> float | None:
        """How long the retry waits (unscaled)."""
        return self.exact_wait_s if self.exact_wait_s is not None else self.delay_s

    @property
    def status(self) -> DeliveryStatus:
        """The delivery's status once the attempt is recorded."""
        if self.next is Next.SUCCEEDED:
            return DeliveryStatus.SUCCEEDED
        if self.next is Next.FAILED:
            return DeliveryStatus.FAILED
        if self.next is Next.PARKED:
            return DeliveryStatus.PARKED
        return DeliveryStatus.PENDING  # a retry is due, or the dead letter marks it DEAD


def decide(
    policy: RetryPolicy,
    succeeded: bool,
    http_status: int | None,
    attempt: int,
    schedule_start: int,
    *,
    throttled_before: int = 0,
    retry_after_s: float | None = None,
) -> Decision:
    """The step after attempt number `attempt` of a schedule that began at `schedule_start`,
    `throttled_before` of whose attempts were 429s that used up nothing.

    A 429 (the receiver asks us to slow down) uses up no attempt, up to MAX_THROTTLED of
    them; it waits its Retry-After, or the schedule's own wait. A receiver's Retry-After on
    any other failure (a 503) makes the wait at least that long."""
    if succeeded:
        return Decision(Next.SUCCEEDED)
    position = attempt - schedule_start + 1 - throttled_before
    if http_status == 429 and throttled_before < MAX_THROTTLED:
        if retry_after_s is None:
            return Decision(Next.RETRY, policy.backoff_at(position), throttled=True)
        return _waiting(retry_after_s, throttled=True)
    if not policy.retries(http_status):
        return Decision(Next.FAILED)
    delay = policy.delay_after(position)
    if delay is None:
        return Decision(Next.EXHAUSTED)
    if retry_after_s is not None and retry_after_s > delay:
        return _waiting(retry_after_s)
    return Decision(Next.RETRY, delay)


def _waiting(retry_after_s: float, *, throttled: bool = False) -> Decision:
    """A retry after the receiver's Retry-After, at least the shortest tier (a Retry-After
    of 0 would be asked again at once)."""
    wait = max(retry_after_s, RETRY_TIERS_S[0])
    return Decision(Next.RETRY, tier_at_least(wait), throttled=throttled, exact_wait_s=wait)
