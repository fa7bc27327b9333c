"""The delivery log, per org and per endpoint: filters (endpoint, status, event type, time),
keyset pages, new rows without a reload (static/app.js polls /rows), each delivery with its
attempts, the request it sent (secrets masked) and a Retry button when it is DEAD."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from libs.domain.endpoint_kinds import DeliveryStatus
from libs.domain.event_types import EventType
from services.api.dashboard.delivery_view import sent_request
from services.api.dashboard.doors import ENDPOINT_PAGES, PICKER_GROUPS
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
from services.api.deliveries.service import RETRYABLE, LogFilter
from services.api.endpoints import service as endpoints
from services.api.endpoints.service import Endpoint
from services.api.errors import BadRequestError
from services.api.state import State

router = APIRouter(prefix=f"{APP}/deliveries", route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 50
CURSOR_SEPARATOR = "~"


def _filter(request: Request) -> LogFilter:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in DeliveryStatus.__members__:
        raise BadRequestError(f"status: one of {', '.join(DeliveryStatus.__members__)}")
    event_type = q.get("event_type") or None
    if event_type is not None and event_type not in {t.value for t in EventType}:
        raise BadRequestError("event type: not one hookpost sends")
    return LogFilter(
        endpoint_id=q.get("endpoint") or None,
        status=status,
        event_type=event_type,
        since=parse_utc(q.get("since"), "from"),
        until=parse_utc(q.get("until"), "until"),
    )


def cursor_of(row: asyncpg.Record) -> str:
    """A row's place in the log: its (created_at, id), the keyset the next page starts after."""
    return f"{row['created_at'].isoformat()}{CURSOR_SEPARATOR}{row['id']}"


def _cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    moment, _, delivery_id = text.partition(CURSOR_SEPARATOR)
    when = parse_utc(moment, "page")
    if when is None or not delivery_id:
        raise BadRequestError("page: not a position in the log")
    return when, delivery_id


async def _picker(pool: asyncpg.Pool, org_id: str) -> list[tuple[str, list[Endpoint]]]:
    """The org's endpoints that have a page, by page: the log's endpoint filter (per-job
    webhooks are many and short-lived: the Mapping jobs page links to their logs)."""
    return [
        (title, await endpoints.list_endpoints(pool, org_id, kind, active_only=False))
        for kind, title in PICKER_GROUPS.items()
    ]


def _query_without(request: Request, *names: str) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in names and v]
    return urlencode(kept)


@router.get("", response_class=HTMLResponse)
async def log(request: Request, state: State, session: Session) -> Response:
    where = _filter(request)
    before = _cursor(request.query_params.get("before"))
    rows = await deliveries.log_page(
        state.pool, session.organization_id, where, before=before, limit=PAGE_SIZE + 1
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    endpoint_name = None
    if where.endpoint_id and rows:
        endpoint_name = rows[0]["endpoint_name"] or where.endpoint_id
    picker = await _picker(state.pool, session.organization_id)
    listed = {e.id for _, found in picker for e in found}
    return render(
        request,
        "log.html",
        session,
        rows=rows,
        where=where,
        first_page=before is None,
        next_cursor=cursor_of(rows[-1]) if more and rows else None,
        filters=_query_without(request, "before"),
        statuses=list(DeliveryStatus.__members__),
        event_types=[t.value for t in EventType],
        endpoint_name=endpoint_name,
        picker=picker,
        unlisted=where.endpoint_id not in listed,
        endpoint_pages=ENDPOINT_PAGES,
    )


@router.get("/rows", response_class=HTMLResponse)
async def first_page_rows(request: Request, state: State, session: Session) -> Response:
    """The first page's rows as <tr>s (`limit` of them, at most a page): static/app.js polls
    this and swaps them in when they changed, so new deliveries and new statuses appear
    without a reload. Rendered here, so escaped exactly as the page is."""
    text = request.query_params.get("limit", "")
    limit = min(int(text), PAGE_SIZE) if text.isdigit() and int(text) > 0 else PAGE_SIZE
    rows = await deliveries.log_page(
        state.pool, session.organization_id, _filter(request), limit=limit
    )
    return render(request, "log_rows.html", session, rows=rows, endpoint_pages=ENDPOINT_PAGES)


@router.get("/{delivery_id}", response_class=HTMLResponse)
async def delivery(delivery_id: str, request: Request, state: State, session: Session) -> Response:
    row, attempts = await deliveries.delivery_with_attempts(
        state.pool, session.organization_id, delivery_id
    )
    latest = attempts[-1]["id"] if attempts else None
    return render(
        request,
        "delivery.html",
        session,
        d=row,
        attempts=attempts,
        sent=sent_request(row, latest, state.settings.payload_cap_bytes),
        retryable=row["status"] in RETRYABLE,
        notice=request.query_params.get("notice"),
        endpoint_pages=ENDPOINT_PAGES,
    )


@router.post("/{delivery_id}/retry")
async def retry(delivery_id: str, state: State, session: Session, form: Form) -> Response:
    del form
    await deliveries.retry_delivery(
        state.pool,
        state.broker,
        state.topology,
        state.settings,
        session.organization_id,
        delivery_id,
    )
    return redirect(f"{APP}/deliveries/{delivery_id}?notice=retried", session)
