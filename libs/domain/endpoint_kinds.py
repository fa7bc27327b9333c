"""The front doors: every endpoint row has one kind, and the kind chooses the retry policy."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class EndpointKind(StrEnum):
    SUBSCRIPTION = "SUBSCRIPTION"  # /webhook-subscriptions (seed 002)
    DESTINATION = "DESTINATION"  # /delivery-destinations (seed 001)
    EXPORT_WEBHOOK = "EXPORT_WEBHOOK"  # /export-webhooks (seed 000)
    AGENT_SINK = "AGENT_SINK"  # /agents/{id}/data-sources (seed 003)
    JOB_WEBHOOK = "JOB_WEBHOOK"  # /mapping-jobs {webhook {url}} (seed 004)
    REPORT_WEBHOOK = "REPORT_WEBHOOK"  # /reports/jobs {webhook {url}} (seed 004, door F)


# One job's webhook each: no endpoint routes of their own (no PUT to re-activate them).
JOB_WEBHOOK_KINDS = frozenset({EndpointKind.JOB_WEBHOOK, EndpointKind.REPORT_WEBHOOK})
# Endpoints signed with their organization's webhook secret (Team Settings), not their own:
# the job webhooks.
ORG_SIGNED_KINDS = JOB_WEBHOOK_KINDS
# Endpoints that subscribe to nothing: they hear only the events addressed to them (a report
# job's outcome goes to that job's webhook alone).
TARGETED_KINDS = frozenset({EndpointKind.REPORT_WEBHOOK})


# An endpoint's own ceiling on attempts per second, set by its owner (every door's
# `rateLimitPerSecond`), kept in its config under this key; libs/delivery/limits.py holds
# every engine to it.
RATE_LIMIT_KEY = "rateLimitPerSecond"
MAX_RATE_LIMIT_PER_S = 1000.0


def rate_limit_of(config: Mapping[str, Any]) -> float | None:
    """An endpoint's own `rateLimitPerSecond` (attempts per second), when it has one."""
    value = config.get(RATE_LIMIT_KEY)
    return float(value) if isinstance(value, int | float) and value > 0 else None


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # ended by a non-retryable answer (agent sinks' 4xx)
    DEAD = "DEAD"
    # Kept, not attempted: its endpoint was INACTIVE (libs/domain/endpoint_health.py); a
    # recover call re-sends it.
    PARKED = "PARKED"
    # An ordered endpoint's delivery waiting for the one before it of its ordering key to
    # end (libs/delivery/ordering.py): not attempted, not re-driven; counted with PENDING by
    # backpressure (services/dispatcher/repository.py), so a stuck line cannot grow unbounded.
    HELD = "HELD"
