"""The ingest rate limit: 429 with Retry-After once an org's bucket is dry."""

from __future__ import annotations

from services.api.errors import RateLimitedError
from services.api.organizations.tokens import CurrentOrg
from services.api.rate_limit import retry_after_seconds
from services.api.state import ApiState


async def within_ingest_rate(state: ApiState, org: CurrentOrg) -> None:
    wait_s = state.events_limiter.take(org.id)
    if wait_s > 0:
        settings = state.settings
        raise RateLimitedError(
            f"too many events: at most {settings.events_rate_per_s:g}/s per organization"
            f" (bursts of {settings.events_rate_burst}); retry later",
            retry_after_s=retry_after_seconds(wait_s),
        )
