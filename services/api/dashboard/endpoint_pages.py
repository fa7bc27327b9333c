"""Developers → Webhooks, Delivery destinations and Export webhooks: list, create (the
secret shown once), detail with its chart and latest deliveries, edit, pause/activate,
rotate, send a test, delete. Every action is the door's own service call with the session's
org: another org's endpoint is the door's 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from libs.domain.ordering import is_ordered
from services.api.dashboard.doors import PAGES, DoorPage, event_choices
from services.api.dashboard.endpoint_view import endpoint_context, recover_since, status_change
from services.api.dashboard.web import APP, DashboardRoute, Form, Session, redirect, render
from services.api.endpoints import service as endpoints
from services.api.endpoints.test_limits import check_test_rate
from services.api.errors import ApiError, BadRequestError, NotFoundError
from services.api.state import State

router = APIRouter(prefix=APP, route_class=DashboardRoute, include_in_schema=False)


def _page(slug: str) -> DoorPage:
    page = PAGES.get(slug)
    if page is None:
        raise NotFoundError("no such page")
    return page


# The door a route's {slug} names (a 404 page for any other slug).
Page = Annotated[DoorPage, Depends(_page)]


@router.get("/{slug}", response_class=HTMLResponse)
async def list_endpoints(page: Page, request: Request, state: State, session: Session) -> Response:
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
async def new_endpoint(page: Page, request: Request, session: Session) -> Response:
    return _form_page(request, session, page)


@router.post("/{slug}/new", response_class=HTMLResponse)
async def create_endpoint(
    page: Page, request: Request, state: State, session: Session, form: Form
) -> Response:
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
    page: Page, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    shown = await endpoint_context(request, state, session, endpoint)
    can_test = page.door.test_data is not None
    return render(request, "endpoint.html", session, page=page, can_test=can_test, **shown)


@router.get("/{slug}/{endpoint_id}/edit", response_class=HTMLResponse)
async def edit_endpoint(
    page: Page, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    form = {
        "name": endpoint.name or "",
        "signature_scheme": endpoint.signature_scheme,
        "rate_limit": endpoint.rate_limit_per_second or "",
        "ordered_delivery": "on" if is_ordered(endpoint.config) else "off",
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
    page: Page, endpoint_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    try:
        await _replace(page, state, session, endpoint_id, form)
    except NotFoundError:
        raise
    except ApiError as exc:
        endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
        return _form_page(
            request, session, page, form, exc.message, endpoint, status_code=exc.status_code
        )
    return redirect(f"{APP}/{page.slug}/{endpoint_id}?notice=saved", session)


@router.post("/{slug}/{endpoint_id}/status")
async def set_status(
    page: Page, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    # Only the status changes; events, name and scheme are kept as they are.
    current = await page.door.get(state.pool, session.organization_id, endpoint_id)
    wanted, notice = status_change(form)
    keep = {
        "status": wanted.value,
        "events": [t.value for t in current.events],
        "name": current.name or "",
        "signature_scheme": current.signature_scheme,
    }
    await _replace(page, state, session, endpoint_id, keep, current)
    return redirect(f"{APP}/{page.slug}/{endpoint_id}?notice={notice}", session)


@router.post("/{slug}/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate_secret(
    page: Page, endpoint_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
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
    page: Page, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    del form  # checked for CSRF; nothing else in it
    if page.door.test_data is None:
        raise NotFoundError("this endpoint has no test send")
    org_id = session.organization_id
    await page.door.get(state.pool, org_id, endpoint_id)  # 404 before it counts against limits
    check_test_rate(state, org_id, endpoint_id)
    delivery_id = await page.door.send_test(
        state.pool, state.outbox, org_id, endpoint_id, page.door.test_data(endpoint_id)
    )
    return redirect(f"{APP}/{page.slug}/{endpoint_id}?tested={delivery_id}", session)


@router.post("/{slug}/{endpoint_id}/recover")
async def recover(
    page: Page, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    """Re-send the endpoint's PARKED, FAILED and DEAD deliveries since T (its own service)."""
    await page.door.get(state.pool, session.organization_id, endpoint_id)  # 404 before 400
    count = await recover_since(state, session.organization_id, endpoint_id, form, page.door.kind)
    return redirect(f"{APP}/{page.slug}/{endpoint_id}?notice=recovered&count={count}", session)


@router.get("/{slug}/{endpoint_id}/delete", response_class=HTMLResponse)
async def confirm_delete(
    page: Page, endpoint_id: str, request: Request, state: State, session: Session
) -> Response:
    endpoint = await page.door.get(state.pool, session.organization_id, endpoint_id)
    return render(request, "delete.html", session, page=page, endpoint=endpoint)


@router.post("/{slug}/{endpoint_id}/delete")
async def delete_endpoint(
    page: Page, endpoint_id: str, state: State, session: Session, form: Form
) -> Response:
    del form
    await page.door.delete(state.pool, session.organization_id, endpoint_id)
    return redirect(f"{APP}/{page.slug}?notice=deleted", session)
