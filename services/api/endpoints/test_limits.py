"""/test calls are rate-limited: each one makes hookpost POST to the endpoint's URL at once,
outside the backpressure that holds real events back, so without a limit an organization
could aim hookpost at any public URL as often as it liked. Per endpoint and per
organization (per api replica, as every rate limit here), a 429 in the §4 shape with
Retry-After beyond them."""

from __future__ import annotations

from fastapi import Depends, Request

from services.api.auth import Org
from services.api.errors import RateLimitedError
from services.api.rate_limit import retry_after_seconds
from services.api.state import ApiState, State


async def within_test_rate(request: Request, state: State, org: Org) -> None:
    # The endpoint is the last path parameter of every /test route (…/{id}/test).
    check_test_rate(state, org.id, str(list(request.path_params.values())[-1]))


def check_test_rate(state: ApiState, org_id: str, endpoint_id: str) -> None:
    """429 beyond the /test limits (the api's routes and the dashboard's Send test button)."""
    for limiter, key, what in (
        (state.test_limiter_per_endpoint, f"{org_id}/{endpoint_id}", "this endpoint"),
        (state.test_limiter_per_org, org_id, "this organization"),
    ):
        wait_s = limiter.take(key)
        if wait_s > 0:
            raise RateLimitedError(
                f"too many test sends to {what}; retry later",
                retry_after_s=retry_after_seconds(wait_s),
            )


TestSendLimit = Depends(within_test_rate)
