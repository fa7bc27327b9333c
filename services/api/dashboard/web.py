"""What every dashboard page shares: the session dependencies, CSRF, the security headers,
rendering, and the route class that turns the domains' errors into pages.

Headers on every page: a Content-Security-Policy with no inline script or style at all
(`script-src 'self'`: static/app.js only), `frame-ancestors 'none'` and X-Frame-Options DENY
against clickjacking — except on a portal session whose link names the customer's origin,
which that one origin may frame — nosniff, no referrer beyond this origin, and no-store
(pages show secrets once and a shared computer's back button must not show them again).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.api.dashboard import sessions
from services.api.dashboard.sessions import DashboardSession
from services.api.errors import ApiError, BadRequestError
from services.api.routing import read_body_within
from services.api.state import ApiState, State

COOKIE = "hookpost_session"
APP = "/app"
FORM_MAX_BYTES = 64 * 1024  # a dashboard form is a few hundred bytes; headers at most a few KiB
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),  # every value escaped, always
    trim_blocks=True,
    lstrip_blocks=True,
)


MULTI = frozenset({"events"})  # form fields that may repeat


class SignInRequired(Exception):
    """No live session: GET pages redirect to sign-in, anything else is a 401 page."""


class CsrfRejected(Exception):
    pass


class PortalForbidden(ApiError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__("a portal link opens the Developers pages and the delivery log only")


def parse_utc(text: str | None, what: str) -> datetime | None:
    """A form's date and time (datetime-local: no zone, the pages say UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise BadRequestError(f"{what}: not a date and time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def security_headers(session: DashboardSession | None) -> dict[str, str]:
    frame_origin = session.frame_origin if session is not None and session.is_portal else None
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; base-uri 'none';"
        f" frame-ancestors {frame_origin or chr(39) + 'none' + chr(39)}"
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if frame_origin is None:
        headers["X-Frame-Options"] = "DENY"
    return headers


def render(
    request: Request,
    template: str,
    session: DashboardSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        request=request, session=session, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=security_headers(session))


def redirect(to: str, session: DashboardSession | None = None) -> RedirectResponse:
    # 303: after a POST the browser GETs the next page (no resubmission on reload).
    return RedirectResponse(to, status_code=303, headers=security_headers(session))


def set_session_cookie(
    response: Response, state: ApiState, value: str, max_age: int, framed: bool
) -> None:
    # A portal session framed by the customer's own app is a third-party context there: its
    # cookie must be SameSite=None (so Secure, as browsers require); CSRF tokens still guard
    # every change. Every other session is SameSite=Lax, and Secure outside dev.
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=APP,
        httponly=True,
        secure=framed or not state.settings.is_dev,
        samesite="none" if framed else "lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=APP)


async def current_session(request: Request, state: State) -> DashboardSession:
    session = await sessions.load(state.pool, request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    return session


async def full_session(
    session: Annotated[DashboardSession, Depends(current_session)],
) -> DashboardSession:
    """A session of the org itself: a portal link opens the delivery pages only."""
    if session.is_portal:
        raise PortalForbidden
    return session


def _same_origin(request: Request) -> bool:
    """A browser sends Origin on every POST; it must be ours: the Host it was sent to, or
    HOOKPOST_PUBLIC_BASE_URL's (behind a proxy that rewrites Host). No cross-site posts."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form post (they always send Origin)
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        return False  # includes "null" (sandboxed frames, file://)
    public = urlsplit(request.app.state.api.settings.public_base_url).netloc
    return parts.netloc in (request.headers.get("host", ""), public)


async def checked_form(request: Request) -> dict[str, Any]:
    """The POSTed form, after its Origin is checked (the sign-in form has no session yet)."""
    if not _same_origin(request):
        raise CsrfRejected
    form = await request.form()
    return {key: form.getlist(key) if key in MULTI else form.get(key) for key in form}


async def csrf_form(
    request: Request, session: Annotated[DashboardSession, Depends(current_session)]
) -> dict[str, Any]:
    """The POSTed form of a state change: same origin and the session's CSRF token."""
    form = await checked_form(request)
    if not session.csrf_matches(form.get("csrf")):
        raise CsrfRejected
    return form


Session = Annotated[DashboardSession, Depends(current_session)]
OrgSession = Annotated[DashboardSession, Depends(full_session)]
Form = Annotated[dict[str, Any], Depends(csrf_form)]


class DashboardRoute(APIRoute):
    """Pages, not JSON: a missing session redirects to sign-in, a domain's error (404, 400,
    403, 409, 429…) is a page with its message, a failed CSRF check is a 403 page. Bodies are
    read within a small limit first, as the api's own routes do."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                if request.method == "POST":
                    await read_body_within(request, FORM_MAX_BYTES)
                return await handler(request)
            except SignInRequired:
                if request.method == "GET":
                    target = quote(request.url.path, safe="/")
                    return redirect(f"{APP}/sign-in?next={target}")
                return _error_page(request, 401, "Your session has ended: sign in again.")
            except CsrfRejected:
                return _error_page(
                    request, 403, "This form expired or came from another site: reload the page."
                )
            except ApiError as exc:
                return _error_page(request, exc.status_code, exc.message, exc.headers())

        return handle


def _error_page(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    response = render(request, "error.html", None, status_code, status=status_code, message=message)
    response.headers.update(headers or {})
    return response
