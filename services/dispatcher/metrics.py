"""Prometheus counters of the dispatcher (served on the ops port's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "hookpost_dispatcher_events_total",
    "Event messages handled, by outcome.",
    ["outcome"],  # dispatched | duplicate | dropped | rejected | requeued
)
DELIVERIES_PUBLISHED = Counter(
    "hookpost_dispatcher_deliveries_published_total",
    "Delivery tasks published (first attempts).",
)
EVENTS_DROPPED_BACKPRESSURE = Counter(
    "hookpost_events_dropped_backpressure_total",
    "Events dropped because their organization had too many PENDING deliveries.",
)
