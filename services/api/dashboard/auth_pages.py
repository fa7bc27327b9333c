"""Sign-in with an org API token, sign-out, and opening a portal link."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api.dashboard import sessions
from services.api.dashboard.web import (
    APP,
    COOKIE,
    DashboardRoute,
    Session,
    checked_form,
    clear_session_cookie,
    csrf_form,
    redirect,
    render,
    set_session_cookie,
)
from services.api.portal_links import service as portal_links
from services.api.state import State

router = APIRouter(prefix=APP, route_class=DashboardRoute, include_in_schema=False)
HOME = f"{APP}/destinations"


def _next(target: str | None) -> str:
    # Only a path of this app: an open redirect would hand a phishing page our sign-in.
    if target and target.startswith(APP + "/") and not target.startswith("//"):
        return target
    return HOME


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home() -> Response:
    return redirect(HOME)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    return render(request, "sign_in.html", None, next=_next(request.query_params.get("next")))


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, state: State) -> Response:
    form = await checked_form(request)
    token = str(form.get("token") or "").strip()
    target = _next(form.get("next"))
    org = await state.tokens.organization(token) if token and len(token) < 200 else None
    if org is None:
        return render(
            request, "sign_in.html", None, 401, next=target, error="That API token is not valid."
        )
    ttl_s = state.settings.dashboard_session_ttl_s
    session_id, _ = await sessions.start(state.pool, org.id, ttl_s)
    response = redirect(target)
    set_session_cookie(response, state, session_id, ttl_s, framed=False)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, state: State, session: Session) -> Response:
    await csrf_form(request, session)
    await sessions.end(state.pool, request.cookies.get(COOKIE))
    response = redirect(f"{APP}/sign-in?signed_out=1")
    clear_session_cookie(response)
    return response


@router.get("/portal/{token}", response_class=HTMLResponse)
async def open_portal(token: str, request: Request, state: State) -> Response:
    link = await portal_links.usable(state.pool, token) if len(token) < 200 else None
    if link is None:
        return render(
            request,
            "error.html",
            None,
            404,
            status=404,
            message="This portal link has expired or was revoked. Ask for a new one.",
        )
    ttl_s = state.settings.dashboard_session_ttl_s
    session_id, expires_at = await sessions.start(
        state.pool, link["organization_id"], ttl_s, link["id"], not_after=link["expires_at"]
    )
    session = await sessions.load(state.pool, session_id)
    response = redirect(f"{APP}/deliveries", session)
    # The token is in this URL: no Referer carries it anywhere.
    response.headers["Referrer-Policy"] = "no-referrer"
    max_age = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    set_session_cookie(
        response, state, session_id, max_age, framed=link["frame_origin"] is not None
    )
    return response
