"""Developers → Webhooks, Delivery destinations and Export webhooks: list, create (the
secret shown once), detail with its chart and latest deliveries, edit, pause/activate,
rotate, send a test, delete. Every action is the door's own service call with the session's
org: another org's endpoint is the door's 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from libs.domain.endpoint_kinds import EndpointStatus
from services.api.dashboard.chart import hourly_chart, start_of_window
from services.api.dashboard.doors import ENDPOINT_PAGES, PAGES, DoorPage, event_choices
from services.api.dashboard.web import (
    APP,
    DashboardRoute,
    Form,
    Session,
    parse_utc,
    redirect,
    render,
)
from services.api.deliveries import service as deliveries
from services.api.deliveries.recovery import recover_endpoint
from services.api.deliveries.service import LogFilter
from services.api.endpoints import service as endpoints
from services.api.endpoints.test_limits import check_test_rate
from services.api.errors import ApiError, BadRequestError, NotFoundError
from services.api.state import State

router = APIRouter(prefix=APP, route_class=DashboardRoute, include_in_schema=False)
LATEST = 10  # deliveries on an endpoint's page; the log pages through the rest


def _page(slug: str) -> DoorPage:
    page = PAGES.get(slug)
    if page is None:
        raise NotFoundError("no such page")
    return page


@router.get("/{slug}", response_class=HTMLResponse)
async def list_endpoints(slug: str, request: Request, state: State, session: Session) -> Response:
    page = _page(slug)
    found = await page.door.list_all(state.pool, session.organization_id, active_only=False)
    return render(request, "endpoints.html", session, page=page, endpoints=found)


def _form_page(
    request: Request,
    session: Session,
    page: DoorPage,
    form: dict | None = None,
    error: str | None = None,
    endpoint: endpoints.Endpoint | None = None,
    status_code: int = 200,
) -> Response:
    chosen = (form or {}).get("events")
    if chosen is None and endpoint is not None:
        chosen = [t.value for t in endpoint.events]
    return render(
        request,
        "endpoint_form.html",
        session,
        status_code,
        page=page,
        form=form or {},
        chosen=set(chosen or []),
        choices=event_choices(session.plan),
        error=error,
        endpoint=endpoint,
    )


@router.get("/{slug}/new", response_class=HTMLResponse)
async def new_endpoint(slug: str, request: Request, session: Session) -> Response:
    return _form_page(request, session, _page(slug))


@router.post("/{slug}/new", response_class=HTMLResponse)
async def create_endpoint(
    slug: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    page = _page(slug)
    try:
        body = page.body(form, None, None)
        created = await page.door.create(
            state.pool, state.settings, session.organization_id, session.plan, body
        )
    except ApiError as exc:
        # The door's own message (URL refused, plan, quota…), on the form the user filled.
        return _form_page(request, session, page, form, exc.message, status_code=exc.status_code)
    return render(
        request,
        "secret.html",
        session,
        page=page,
        endpoint=created.endpoint,
        secret=created.signing_secret,
        heading=f"{page.singular.capitalize()} created",
        previous_until=None,
    )


@router.get("/{slug}/{endpoint_id}", response_class=HTMLResponse)
async def show_endpoint(
    slug: str, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    page = _page(slug)
    org_id = session.organization_id
    endpoint = await page.door.get(state.pool, org_id, endpoint_id)
    now = datetime.now(UTC)
    outcomes = await deliveries.hourly_outcomes(
        state.pool, org_id, endpoint_id, start_of_window(now)
    )
    latest = await deliveries.log_page(
        state.pool, org_id, LogFilter(endpoint_id=endpoint_id), limit=LATEST
    )
    return render(
        request,
        "endpoint.html",
        session,
        page=page,
        endpoint=endpoint,
        chart=hourly_chart(outcomes, now),
        latest=latest,
        latest_limit=LATEST,
        endpoint_pages=ENDPOINT_PAGES,
        tested=request.query_params.get("tested"),
        recovered=request.query_params.get("count"),
        recover_from=(now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        notice=request.query_params.get("notice"),
    )


@router.get("/{slug}/{endpoint_id}/edit", response_class=HTMLResponse)
async def edit_endpoint(
    slug: str, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    page = _page(slug)
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    form = {
        "name": endpoint.name or "",
        "signature_scheme": endpoint.signature_scheme,
        "rate_limit": endpoint.rate_limit_per_second or "",
    }
    return _form_page(request, session, page, form, endpoint=endpoint)


async def _replace(
    page: DoorPage,
    state: State,
    session: Session,
    endpoint_id: str,
    form: dict,
    current: endpoints.Endpoint | None = None,
) -> endpoints.Endpoint:
    """Replace the endpoint as PUT does; `current`, when the caller has read it already."""
    org_id = session.organization_id
    if current is None:
        current = await page.door.get(state.pool, org_id, endpoint_id)
    stored = await endpoints.stored_settings(state.pool, org_id, page.door.kind, endpoint_id)
    body = page.body(form, current, stored)
    return await page.door.replace(
        state.pool, state.settings, org_id, session.plan, endpoint_id, body
    )


@router.post("/{slug}/{endpoint_id}/edit", response_class=HTMLResponse)
async def update_endpoint(
    slug: str, endpoint_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    page = _page(slug)
    try:
        await _replace(page, state, session, endpoint_id, form)
    except NotFoundError:
        raise
    except ApiError as exc:
        endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
        return _form_page(
            request, session, page, form, exc.message, endpoint, status_code=exc.status_code
        )
    return redirect(f"{APP}/{slug}/{endpoint_id}?notice=saved", session)


@router.post("/{slug}/{endpoint_id}/status")
async def set_status(
    slug: str, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    page = _page(slug)
    wanted = EndpointStatus(form.get("status") or "INACTIVE")
    # Only the status changes; events, name and scheme are kept as they are.
    current = await page.door.get(state.pool, session.organization_id, endpoint_id)
    keep = {
        "status": wanted.value,
        "events": [t.value for t in current.events],
        "name": current.name or "",
        "signature_scheme": current.signature_scheme,
    }
    await _replace(page, state, session, endpoint_id, keep, current)
    notice = "activated" if wanted is EndpointStatus.ACTIVE else "paused"
    return redirect(f"{APP}/{slug}/{endpoint_id}?notice={notice}", session)


@router.post("/{slug}/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate_secret(
    slug: str, endpoint_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    page = _page(slug)
    if page.rotate is None:
        raise NotFoundError("this endpoint has no secret to rotate here")
    grace_s = 0
    if page.default_grace_s is not None:
        text = str(form.get("grace_seconds") or page.default_grace_s).strip()
        if not text.isdigit():
            raise BadRequestError("the grace period is a whole number of seconds")
        grace_s = int(text)
    secret, previous_until = await page.rotate(
        state.pool, session.organization_id, endpoint_id, grace_s
    )
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    return render(
        request,
        "secret.html",
        session,
        page=page,
        endpoint=endpoint,
        secret=secret,
        heading="Signing secret rotated",
        previous_until=previous_until,
    )


@router.post("/{slug}/{endpoint_id}/test")
async def send_test(
    slug: str, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    del form  # checked for CSRF; nothing else in it
    page = _page(slug)
    if page.door.test_data is None:
        raise NotFoundError("this endpoint has no test send")
    org_id = session.organization_id
    await page.door.get(state.pool, org_id, endpoint_id)  # 404 before it counts against limits
    check_test_rate(state, org_id, endpoint_id)
    delivery_id = await page.door.send_test(
        state.pool, state.outbox, org_id, endpoint_id, page.door.test_data(endpoint_id)
    )
    return redirect(f"{APP}/{slug}/{endpoint_id}?tested={delivery_id}", session)


@router.post("/{slug}/{endpoint_id}/recover")
async def recover(
    slug: str, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    """Re-send the endpoint's PARKED, FAILED and DEAD deliveries since T (its own service)."""
    page = _page(slug)
    await page.door.get(state.pool, session.organization_id, endpoint_id)  # 404 before 400
    since = parse_utc(form.get("since"), "since")
    if since is None:
        raise BadRequestError("since: give the date and time to recover from")
    count = await recover_endpoint(
        state, session.organization_id, endpoint_id, since, kind=page.door.kind
    )
    return redirect(f"{APP}/{slug}/{endpoint_id}?notice=recovered&count={count}", session)


@router.get("/{slug}/{endpoint_id}/delete", response_class=HTMLResponse)
async def confirm_delete(
    slug: str, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    page = _page(slug)
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    return render(request, "delete.html", session, page=page, endpoint=endpoint)


@router.post("/{slug}/{endpoint_id}/delete")
async def delete_endpoint(
    slug: str, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    del form
    page = _page(slug)
    await page.door.delete(state.pool, session.organization_id, endpoint_id)
    return redirect(f"{APP}/{slug}?notice=deleted", session)
