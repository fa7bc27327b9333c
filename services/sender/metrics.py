"""Prometheus metrics of a sender replica's consumer; the attempts themselves are the delivery
engine's (`hookpost_delivery_*{service="sender"}`, libs/delivery/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

IN_FLIGHT = Gauge(
    "hookpost_sender_in_flight",
    "Delivery tasks being handled by this replica right now (at most its prefetch).",
)
TASKS = Counter(
    "hookpost_sender_tasks_total",
    "Delivery tasks this replica took, by the work queue they came from (shards' balance).",
    ["queue"],
)
