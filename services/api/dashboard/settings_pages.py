"""Team Settings (plan, the org webhook secret: reveal on purpose, rotate; portal links) and
Jobs (mapping and report jobs, each with its webhook, that webhook's status and deliveries,
and "recover since T" for it).
Team Settings is the org's own: a portal session never reaches it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from libs.domain.ids import IdPrefix
from libs.domain.secrets import mask_secret
from services.api.dashboard.endpoint_view import recover_context, since_of
from services.api.dashboard.web import (
    APP,
    DashboardRoute,
    Form,
    OrgSession,
    Session,
    redirect,
    render,
)
from services.api.errors import BadRequestError, NotFoundError
from services.api.mapping_jobs import service as mapping_jobs
from services.api.organizations import service as organizations
from services.api.portal_links import service as portal_links
from services.api.reports import service as report_jobs
from services.api.state import State

router = APIRouter(prefix=APP, route_class=DashboardRoute, include_in_schema=False)


async def _settings(
    request: Request, state: State, session: OrgSession, **shown: object
) -> Response:
    org_id = session.organization_id
    return render(
        request,
        "settings.html",
        session,
        masked=await organizations.ensure_webhook_secret(state.pool, org_id),
        links=await portal_links.list_links(state.pool, org_id),
        max_link_ttl_s=state.settings.portal_link_max_ttl_s,
        **shown,
    )


@router.get("/settings", response_class=HTMLResponse)
async def settings(request: Request, state: State, session: OrgSession) -> Response:
    return await _settings(request, state, session)


@router.post("/settings/reveal", response_class=HTMLResponse)
async def reveal(request: Request, state: State, session: OrgSession, form: Form) -> Response:
    del form
    secret = await organizations.reveal_webhook_secret(state.pool, session.organization_id)
    return await _settings(request, state, session, revealed=secret)


@router.post("/settings/rotate", response_class=HTMLResponse)
async def rotate(request: Request, state: State, session: OrgSession, form: Form) -> Response:
    del form
    secret = await organizations.rotate_webhook_secret(state.pool, session.organization_id)
    return await _settings(
        request, state, session, rotated=secret, rotated_mask=mask_secret(secret)
    )


@router.post("/settings/portal-links", response_class=HTMLResponse)
async def mint_link(request: Request, state: State, session: OrgSession, form: Form) -> Response:
    ttl_text = str(form.get("ttl_minutes") or "60").strip()
    if not ttl_text.isdigit():
        raise BadRequestError("the link's lifetime is a whole number of minutes")
    link = await portal_links.mint(
        state.pool,
        session.organization_id,
        int(ttl_text) * 60,
        state.settings.portal_link_max_ttl_s,
        str(form.get("frame_origin") or "").strip() or None,
        created_by="organization",
    )
    url = str(request.base_url).rstrip("/") + link.path
    return await _settings(request, state, session, minted=link, minted_url=url)


@router.post("/settings/portal-links/{link_id}/revoke", response_class=HTMLResponse)
async def revoke_link(
    link_id: str, request: Request, state: State, session: OrgSession, form: Form
) -> Response:
    del form
    await portal_links.revoke(state.pool, session.organization_id, link_id)
    return await _settings(request, state, session, notice="Portal link revoked.")


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(request: Request, state: State, session: Session) -> Response:
    org_id = session.organization_id
    found = await mapping_jobs.recent_jobs(state.pool, org_id)
    reports = await report_jobs.recent_jobs(state.pool, org_id)
    shown = recover_context(request, datetime.now(UTC))
    return render(request, "jobs.html", session, jobs=found, reports=reports, **shown)


# A job's id names its kind, and so the service its API's …/webhook/recover calls.
JOB_SERVICES: dict[str, ModuleType] = {
    IdPrefix.MAPPING_JOB.value: mapping_jobs,
    IdPrefix.REPORT_JOB.value: report_jobs,
}


@router.post("/jobs/{job_id}/recover")
async def recover_job_webhook(job_id: str, state: State, session: Session, form: Form) -> Response:
    """Re-send the job webhook's PARKED, FAILED and DEAD deliveries since T through the job
    recover the API runs (it re-activates a webhook a 410 or long failure disabled)."""
    jobs_service = JOB_SERVICES.get(job_id.partition("_")[0])
    if jobs_service is None:
        raise NotFoundError(f"job {job_id!r} not found")
    org_id = session.organization_id
    await jobs_service.get_job(state.pool, org_id, job_id)  # 404 before 400
    count = await jobs_service.recover_webhook(state, org_id, job_id, since_of(form))
    return redirect(f"{APP}/jobs?notice=recovered&count={count}", session)
