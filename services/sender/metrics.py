"""Prometheus metrics of a sender replica (served on the ops port's /metrics).

Labels are bounded: an outcome class, a final status or a retry tier, from fixed lists;
never a URL, an endpoint, an organization or anything secret.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from services.sender.http_client import HttpResult

ATTEMPTS = Counter(
    "hookpost_sender_attempts_total",
    "HTTP delivery attempts, by outcome class.",
    ["outcome"],  # 2xx | 3xx | 4xx | 5xx | timeout | connection_error | refused
)
ATTEMPT_SECONDS = Histogram(
    "hookpost_sender_attempt_seconds",
    "Duration of one delivery attempt: signing, the HTTP POST and reading the answer.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_FIRST_ATTEMPT_SECONDS = Histogram(
    "hookpost_sender_event_to_first_attempt_seconds",
    "From the event's creation to the start of its delivery's first attempt.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
DELIVERIES_FINISHED = Counter(
    "hookpost_sender_deliveries_finished_total",
    "Deliveries that reached a final status, by status.",
    ["status"],  # SUCCEEDED | FAILED | DEAD
)
RETRY_PUBLISHES = Counter(
    "hookpost_sender_retry_publishes_total",
    "Failed attempts published to a retry tier, by the tier's unscaled delay.",
    ["tier"],  # 5s | 30s | 60s | 300s | 1800s (libs/domain/retry_policy.py RETRY_TIERS_S)
)
IN_FLIGHT = Gauge(
    "hookpost_sender_in_flight",
    "Delivery tasks being handled by this replica right now (at most its prefetch).",
)


def outcome_class(result: HttpResult) -> str:
    if result.http_status is not None:
        return f"{result.http_status // 100}xx"
    if result.refused:
        return "refused"  # never sent: SSRF refusal, unusable secret
    if result.timed_out:
        return "timeout"
    return "connection_error"


def observe_first_attempt(attempted_at: datetime, event_created_at: datetime) -> None:
    EVENT_TO_FIRST_ATTEMPT_SECONDS.observe(
        max(0.0, (attempted_at - event_created_at).total_seconds())
    )
