"""Prometheus metrics of the dispatcher (served on the ops port's /metrics).

Labels are bounded: an outcome from a fixed list, never an id, URL or organization.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter(
    "hookpost_dispatcher_events_total",
    "Event messages handled, by outcome.",
    ["outcome"],  # dispatched | duplicate | recovered | dropped | rejected | requeued
)
DELIVERIES_PUBLISHED = Counter(
    "hookpost_dispatcher_deliveries_published_total",
    "Delivery tasks published to the sender queue (first attempts and recovered steps).",
)
FIRST_ATTEMPTS_HERE = Counter(
    "hookpost_dispatcher_first_attempts_total",
    "First attempts this replica POSTed itself instead of publishing them to the sender queue.",
)
FIRST_ATTEMPTS_HANDED_OVER = Counter(
    "hookpost_dispatcher_first_attempts_handed_over_total",
    "First attempts begun here that failed mid-way and went to the sender queue after all.",
)
EVENTS_DROPPED_BACKPRESSURE = Counter(
    "hookpost_dispatcher_events_dropped_backpressure_total",
    "Events dropped because their organization had too many PENDING and HELD deliveries"
    " (counted once per event, however often its message is redelivered).",
)
IN_FLIGHT = Gauge(
    "hookpost_dispatcher_in_flight",
    "Event messages being handled by this replica right now (at most its prefetch).",
)
