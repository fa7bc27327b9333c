"""The api's Prometheus metrics (module level: one registry per process, many apps in tests)."""

from __future__ import annotations

from prometheus_client import Counter

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
