"""The api's Prometheus metrics (module level: one registry per process, many apps in tests)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_ACCEPTED = Counter(
    "hookpost_api_events_accepted_total", "Events stored in the outbox by the API", ["type"]
)
EVENTS_PUBLISHED = Counter(
    "hookpost_api_events_published_total",
    "Outbox events confirmed by the broker",
    ["path"],  # inline (during the request) or relay (republished later)
)
PUBLISH_FAILURES = Counter(
    "hookpost_api_publish_failures_total", "Publishes the broker did not confirm", ["what"]
)
HTTP_RESPONSES = Counter(
    "hookpost_api_http_responses_total", "HTTP responses by status class", ["status_class"]
)

# From PostgreSQL on each scrape (services/api/backlog/gauges.py): the same in every replica.
OUTBOX_BACKLOG = Gauge(
    "hookpost_api_outbox_backlog",
    "Events stored but not yet confirmed by the broker (the outbox relay's work); a confirmed"
    " event counts until its published mark is written (normally within 50 ms).",
)
OUTBOX_OLDEST_AGE = Gauge(
    "hookpost_api_outbox_oldest_age_seconds",
    "Age of the oldest event not yet confirmed by the broker (0 when none).",
)
PENDING_DELIVERIES = Gauge(
    "hookpost_api_pending_deliveries",
    "PENDING and HELD deliveries (what backpressure counts) of the 20 organizations with the"
    " most, and of all others together.",
    ["organization_id"],  # an organization id (top 20 only) or "_other": at most 21 series
)
