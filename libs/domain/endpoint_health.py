"""When an endpoint is switched off by what it answers, and what happens to its events then.

The one place these rules live (the engine, the dispatcher and the api all ask here):

- A 410 Gone disables the endpoint at once: INACTIVE, `deactivatedReason: ENDPOINT_GONE`.
- Persistent failure disables it: `FAILING`, once every attempt to it has failed for
  `HealthPolicy.failing_after` (default 5 days, as Svix) AND at least
  `HealthPolicy.min_dead_in_a_row` of its deliveries in a row ended DEAD. Any successful
  attempt resets both. A 429 neither starts nor resets the clock: the receiver is alive.
- While an endpoint is INACTIVE for any reason but a plan downgrade (the user's own switch
  included), the events it would have received become PARKED deliveries: never attempted,
  not counted as PENDING (backpressure, reconciler), re-sent by a recover call.
  A plan downgrade keeps today's rule: its endpoints hear nothing (SPEC §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.domain.endpoint_kinds import EndpointStatus


class DeactivatedReason(StrEnum):
    PLAN_DOWNGRADE = "PLAN_DOWNGRADE"  # the org's plan no longer allows it (SPEC §3)
    ENDPOINT_GONE = "ENDPOINT_GONE"  # it answered 410 Gone
    FAILING = "FAILING"  # every attempt failed for a long while


# Why an endpoint is INACTIVE decides whether its events are kept (PARKED) or not recorded.
NOT_PARKED_REASONS: tuple[str, ...] = (DeactivatedReason.PLAN_DOWNGRADE.value,)
GONE_STATUS = 410
THROTTLED_STATUS = 429

DEFAULT_FAILING_AFTER_S = 5 * 24 * 3600
DEFAULT_MIN_DEAD_IN_A_ROW = 5


@dataclass(frozen=True)
class HealthPolicy:
    failing_after: timedelta = timedelta(seconds=DEFAULT_FAILING_AFTER_S)
    min_dead_in_a_row: int = DEFAULT_MIN_DEAD_IN_A_ROW


def parks(status: str, deactivated_reason: str | None) -> bool:
    """Whether an endpoint in this state gets PARKED deliveries instead of attempts."""
    return status == EndpointStatus.INACTIVE.value and deactivated_reason not in NOT_PARKED_REASONS


def is_gone(http_status: int | None) -> bool:
    """An answer that disables the endpoint at once."""
    return http_status == GONE_STATUS


def attempt_effect(succeeded: bool, http_status: int | None) -> bool | None:
    """What an attempt says of its endpoint's health: True, it failed (the failing period
    starts or goes on); False, it is healthy (the period and the DEAD count reset); None,
    neither (a 429: the receiver is alive and asks us to slow down)."""
    if succeeded:
        return False
    if http_status == THROTTLED_STATUS:
        return None
    return True


def is_failing(
    failing_since: datetime | None, dead_in_a_row: int, now: datetime, policy: HealthPolicy
) -> bool:
    """Whether an endpoint whose deliveries just ended DEAD is to be disabled as FAILING."""
    if failing_since is None:
        return False
    return now - failing_since >= policy.failing_after and dead_in_a_row >= policy.min_dead_in_a_row
