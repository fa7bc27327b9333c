"""Prometheus metrics of a sender replica (served on the ops port's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "hookpost_sender_attempts_total",
    "HTTP delivery attempts, by outcome.",
    ["outcome"],  # succeeded | failed | refused
)
ATTEMPT_SECONDS = Histogram(
    "hookpost_sender_attempt_seconds",
    "Duration of one HTTP delivery attempt.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES_FINISHED = Counter(
    "hookpost_sender_deliveries_finished_total",
    "Deliveries that reached a final status, by status.",
    ["status"],  # SUCCEEDED | FAILED | DEAD
)
RETRIES_SCHEDULED = Counter(
    "hookpost_sender_retries_scheduled_total", "Failed attempts sent to a retry tier."
)
