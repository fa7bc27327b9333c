"""The headers hookpost sets on every attempt, which no customer setting may replace.

The api refuses them at registration and the sender drops them at send time, from this one
list (compared case-insensitively).
"""

from __future__ import annotations

import re

EVENT_HEADER = "X-Webhook-Event"
DELIVERY_HEADER = "X-Webhook-Delivery"

RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "X-Webhook-Signature",
        EVENT_HEADER,
        DELIVERY_HEADER,
        "X-MT-Signature",
        "mappa-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Expect",
        "Proxy-Authorization",
        "traceparent",
        "tracestate",
    )
)

# RFC 9110 token characters.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
