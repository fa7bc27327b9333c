"""Prometheus metrics of the delivery engine, labelled by the service that ran it (`sender`
for the sender queue, `dispatcher` for the first attempts it makes itself).

Labels are bounded: a service, an outcome class, a final status or a retry tier, from
fixed lists; never a URL, an endpoint, an organization or anything secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter, Histogram

from libs.delivery.http_client import HttpResult
from libs.domain.endpoint_kinds import DeliveryStatus

ATTEMPTS = Counter(
    "hookpost_delivery_attempts_total",
    "HTTP delivery attempts, by outcome class.",
    ["service", "outcome"],  # 2xx | 3xx | 4xx | 5xx | timeout | connection_error | refused
)
ATTEMPT_SECONDS = Histogram(
    "hookpost_delivery_attempt_seconds",
    "Duration of one delivery attempt: signing, the HTTP POST and reading the answer.",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_FIRST_ATTEMPT_SECONDS = Histogram(
    "hookpost_delivery_event_to_first_attempt_seconds",
    "From the event's creation to the start of its delivery's first attempt.",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
DELIVERIES_FINISHED = Counter(
    "hookpost_delivery_finished_total",
    "Deliveries that reached a final status, by status.",
    ["service", "status"],  # SUCCEEDED | FAILED | DEAD | PARKED
)
DEFERRED = Counter(
    "hookpost_delivery_deferred_total",
    "Steps put back for a moment because their endpoint had no room (libs/delivery/limits.py).",
    ["service"],
)
RETRY_PUBLISHES = Counter(
    "hookpost_delivery_retry_publishes_total",
    "Failed attempts published to a retry tier, by the tier's unscaled delay.",
    ["service", "tier"],  # 5s | 30s | 60s | 300s | 1800s (libs/domain/retry_policy.py)
)


def outcome_class(result: HttpResult) -> str:
    if result.http_status is not None:
        return f"{result.http_status // 100}xx"
    if result.refused:
        return "refused"  # never sent: SSRF refusal, unusable secret
    if result.timed_out:
        return "timeout"
    return "connection_error"


@dataclass
class EngineMetrics:
    """The engine's metrics for one service. Children are looked up once per label value
    (`labels()` takes a lock and builds a key), not once per attempt."""

    service: str
    _attempts: dict[str, Counter] = field(default_factory=dict)
    _finished: dict[str, Counter] = field(default_factory=dict)
    _retries: dict[int, Counter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._attempt_seconds = ATTEMPT_SECONDS.labels(self.service)
        self._to_first_attempt = EVENT_TO_FIRST_ATTEMPT_SECONDS.labels(self.service)
        self._deferred = DEFERRED.labels(self.service)

    def attempted(self, result: HttpResult) -> None:
        outcome = outcome_class(result)
        child = self._attempts.get(outcome)
        if child is None:
            child = self._attempts[outcome] = ATTEMPTS.labels(self.service, outcome)
        child.inc()

    def attempt_took(self, seconds: float) -> None:
        self._attempt_seconds.observe(seconds)

    def first_attempt_started(self, attempted_at: datetime, event_created_at: datetime) -> None:
        self._to_first_attempt.observe(max(0.0, (attempted_at - event_created_at).total_seconds()))

    def finished(self, status: DeliveryStatus) -> None:
        child = self._finished.get(status)
        if child is None:
            child = self._finished[status] = DELIVERIES_FINISHED.labels(self.service, status.value)
        child.inc()

    def deferred(self) -> None:
        self._deferred.inc()

    def retry_published(self, delay_s: int) -> None:
        child = self._retries.get(delay_s)
        if child is None:
            child = self._retries[delay_s] = RETRY_PUBLISHES.labels(self.service, f"{delay_s}s")
        child.inc()
