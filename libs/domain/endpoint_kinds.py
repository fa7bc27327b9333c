"""The front doors: every endpoint row has one kind, and the kind chooses the retry policy."""

from __future__ import annotations

from enum import StrEnum


class EndpointKind(StrEnum):
    SUBSCRIPTION = "SUBSCRIPTION"  # /webhook-subscriptions (seed 002)
    DESTINATION = "DESTINATION"  # /delivery-destinations (seed 001)
    EXPORT_WEBHOOK = "EXPORT_WEBHOOK"  # /export-webhooks (seed 000)
    AGENT_SINK = "AGENT_SINK"  # /agents/{id}/data-sources (seed 003)
    JOB_WEBHOOK = "JOB_WEBHOOK"  # /mapping-jobs {webhook {url}} (seed 004)


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # ended by a non-retryable answer (agent sinks' 4xx)
    DEAD = "DEAD"
    # An ordered endpoint's delivery waiting for the one before it of its ordering key to
    # end (libs/delivery/ordering.py): not attempted, not re-driven, not counted as pending.
    HELD = "HELD"
