"""What an endpoint's page shows and does whatever its door (the webhook doors' pages and
the agent sinks' pages): its chart, its latest deliveries, the notices of the action just
done, and "recover failed deliveries since T" (whose form the Jobs page shares)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from libs.domain.ordering import is_ordered
from services.api.dashboard.chart import hourly_chart, start_of_window
from services.api.dashboard.doors import ENDPOINT_PAGES
from services.api.dashboard.sessions import DashboardSession
from services.api.dashboard.web import parse_utc
from services.api.deliveries import service as deliveries
from services.api.deliveries.recovery import recover_endpoint
from services.api.deliveries.service import LogFilter
from services.api.endpoints.service import Endpoint
from services.api.errors import BadRequestError
from services.api.state import ApiState

LATEST = 10  # deliveries on an endpoint's page; the log pages through the rest


async def endpoint_context(
    request: Request, state: ApiState, session: DashboardSession, endpoint: Endpoint
) -> dict[str, Any]:
    """The template values endpoint.html needs beside its page."""
    org_id, endpoint_id = session.organization_id, endpoint.id
    now = datetime.now(UTC)
    outcomes = await deliveries.hourly_outcomes(
        state.pool, org_id, endpoint_id, start_of_window(now)
    )
    latest = await deliveries.log_page(
        state.pool, org_id, LogFilter(endpoint_id=endpoint_id), limit=LATEST
    )
    return {
        "endpoint": endpoint,
        "ordered": is_ordered(endpoint.config),
        "chart": hourly_chart(outcomes, now),
        "latest": latest,
        "latest_limit": LATEST,
        "endpoint_pages": ENDPOINT_PAGES,
        "tested": request.query_params.get("tested"),
        **recover_context(request, now),
    }


def recover_context(request: Request, now: datetime) -> dict[str, Any]:
    """What a page with "Recover since T" forms shows: their default T (a day ago) and the
    notice the redirect after a recover left (the endpoint pages and the Jobs page)."""
    q = request.query_params
    return {
        "recovered": q.get("count"),
        "recover_from": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "notice": q.get("notice"),
    }


def since_of(form: dict[str, Any]) -> datetime:
    """The T a "Recover since" form asks for (datetime-local, UTC); a 400 without one."""
    since = parse_utc(form.get("since"), "since")
    if since is None:
        raise BadRequestError("since: give the date and time to recover from")
    return since


async def recover_since(
    state: ApiState, org_id: str, endpoint_id: str, form: dict[str, Any], kind: EndpointKind
) -> int:
    """Re-send the endpoint's PARKED, FAILED and DEAD deliveries since the form's T (the
    service every door's POST …/recover runs); the caller has found the endpoint first."""
    return await recover_endpoint(state, org_id, endpoint_id, since_of(form), kind=kind)


def status_change(form: dict[str, Any]) -> tuple[EndpointStatus, str]:
    """The status a Pause or Activate button asks for, and the notice it leaves."""
    try:
        wanted = EndpointStatus(form.get("status") or EndpointStatus.INACTIVE.value)
    except ValueError as exc:
        raise BadRequestError("status: ACTIVE or INACTIVE") from exc
    return wanted, "activated" if wanted is EndpointStatus.ACTIVE else "paused"
