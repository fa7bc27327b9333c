"""Developers → Agent sinks (seed 003): agents with their rules, and their results sinks
(HTTPS webhooks, Pro Max): add (a secret generated here is shown once), edit, pause and
activate, replace the secret, send a test, recover failed pushes since T, delete. Every
action is services/api/agents/service.py, as the API's routes call it: the plan gate, the
agent's ownership of the sink and the URL and secret checks are its rules, not the page's.
A sink's page is /app/agents/sinks/{id} (the log links there); another org's is a 404."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from libs.domain import plan_gate
from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from services.api.agents import service as agents
from services.api.agents.schemas import (
    AUTH_SCHEMES,
    MAX_RETRY_FAILED_PUSH,
    WIRE_AUTH_SCHEMES,
    AgentPatch,
    AgentRules,
    DataSourceIn,
)
from services.api.dashboard.doors import DoorPage, rate_limit, validated
from services.api.dashboard.endpoint_view import endpoint_context, recover_since, status_change
from services.api.dashboard.web import APP, DashboardRoute, Form, Session, redirect, render
from services.api.endpoints import service as endpoints
from services.api.endpoints.service import Endpoint
from services.api.endpoints.test_limits import check_test_rate
from services.api.errors import ApiError, BadRequestError
from services.api.state import State

router = APIRouter(prefix=f"{APP}/agents", route_class=DashboardRoute, include_in_schema=False)
# A sink's pages share endpoint.html, delete.html and secret.html with the doors' pages.
SINK_PAGE = DoorPage(
    "agents/sinks", "Agent sinks", "results sink", agents.DOOR, DataSourceIn, None, None, False
)
# Schemes whose secret the page may generate (Basic's is the user's own "user:password").
GENERATED = frozenset({"HmacSha256", "Bearer"})


@router.get("", response_class=HTMLResponse)
async def agent_list(request: Request, state: State, session: Session) -> Response:
    org_id, plan = session.organization_id, session.plan
    allowed = plan_gate.allows_kind(plan, EndpointKind.AGENT_SINK)
    listed = []
    for agent in await agents.list_agents(state.pool, org_id):
        sinks = (
            await agents.list_data_sources(state.pool, org_id, plan, agent["id"]) if allowed else []
        )
        listed.append((agent, agents.rules_of(agent), sinks))
    return render(
        request,
        "agents.html",
        session,
        agents=listed,
        allowed=allowed,
        minimum=agents.SINK_MINIMUM_PLAN,
        schemes=WIRE_AUTH_SCHEMES,
        max_retries=MAX_RETRY_FAILED_PUSH,
        notice=request.query_params.get("notice"),
    )


@router.post("")
async def create_agent(state: State, session: Session, form: Form) -> Response:
    name = str(form.get("name") or "").strip()
    if not name:
        raise BadRequestError("name: give the agent a name")
    await agents.create_agent(state.pool, session.organization_id, name)
    return redirect(f"{APP}/agents?notice=agent-created", session)


@router.post("/{agent_id}/rules")
async def set_rules(agent_id: str, state: State, session: Session, form: Form) -> Response:
    await agents.get_agent(state.pool, session.organization_id, agent_id)  # 404 before 400
    retries = str(form.get("retry_failed_push") or "").strip()
    if not retries.isdigit():
        raise BadRequestError("retry_failed_push: a whole number of retries")
    rules = validated(
        AgentRules,
        {
            "data_sinks": {
                "auto_push_on_job_complete": form.get("auto_push") == "on",
                "retry_failed_push": int(retries),
            }
        },
    )
    await agents.set_rules(state.pool, session.organization_id, agent_id, rules)
    return redirect(f"{APP}/agents?notice=rules#a-{agent_id}", session)


@router.post("/{agent_id}/status")
async def set_agent_status(agent_id: str, state: State, session: Session, form: Form) -> Response:
    patch = validated(AgentPatch, {"status": form.get("status")})
    await agents.update_agent(state.pool, session.organization_id, agent_id, patch)
    notice = "activated" if patch.status is EndpointStatus.ACTIVE else "deactivated"
    return redirect(f"{APP}/agents?notice=agent-{notice}#a-{agent_id}", session)


# --- sinks --------------------------------------------------------------------------------


async def _sink(state: State, session: Session, ds_id: str) -> Endpoint:
    """The org's sink with its agent checked and the plan gate passed (else 404 / 403)."""
    found = await agents.DOOR.get(state.pool, session.organization_id, ds_id)
    assert found.agent_id is not None  # every AGENT_SINK belongs to an agent
    org_id, plan = session.organization_id, session.plan
    return await agents.get_data_source(state.pool, org_id, plan, found.agent_id, ds_id)


def _secret(form: dict[str, Any], scheme: str) -> tuple[str | None, bool]:
    """(the form's secret, or one made here when it is empty and the scheme allows: then
    True, and the page shows it once)."""
    typed = str(form.get("secret") or "")
    if typed or scheme not in GENERATED:
        return typed or None, False
    return secrets.token_hex(32), True  # the seed's "32-byte secret"


async def _body(
    state: State,
    session: Session,
    form: dict[str, Any],
    current: Endpoint | None,
    secret: str | None,
) -> DataSourceIn:
    """The API's own body from a form; what it leaves empty is kept from `current` (no
    secret: the stored one stays, see agents.service.replace_data_source)."""
    url = str(form.get("url") or "").strip()
    if not url and current is not None:
        org_id = session.organization_id
        url = (await endpoints.stored_settings(state.pool, org_id, current.kind, current.id)).url
    scheme = form.get("auth_scheme") or (
        WIRE_AUTH_SCHEMES[current.signature_scheme] if current else ""
    )
    raw: dict[str, Any] = {
        "role": "RESULTS_SINK",
        "type": "HTTPS_WEBHOOK",
        "name": str(form.get("name") or "").strip() or (current.name if current else None),
        "config": {"url": url, "authScheme": scheme},
        "format": "JSON",
        "status": form.get("status") or (current.status.value if current else "ACTIVE"),
        "rateLimitPerSecond": rate_limit(form, current),
    }
    if secret is not None:
        raw["secret"] = {"value": secret}
    return validated(DataSourceIn, raw)


def _form_page(
    request: Request,
    session: Session,
    form: dict[str, Any],
    agent_id: str,
    *,
    sink: Endpoint | None = None,
    failed: ApiError | None = None,
) -> Response:
    """The sink's form, as filled (`sink`: the one edited), with the API's complaint about it
    (`failed`) if any."""
    return render(
        request,
        "sink_form.html",
        session,
        failed.status_code if failed else 200,
        page=SINK_PAGE,
        agent_id=agent_id,
        form=form,
        endpoint=sink,
        error=failed.message if failed else None,
        schemes=list(AUTH_SCHEMES),
        generated=GENERATED,
    )


def _shown_once(
    request: Request, session: Session, sink: Endpoint, secret: str, heading: str
) -> Response:
    return render(
        request,
        "secret.html",
        session,
        page=SINK_PAGE,
        endpoint=sink,
        secret=secret,
        heading=heading,
        previous_until=None,
    )


@router.get("/{agent_id}/sinks/new", response_class=HTMLResponse)
async def new_sink(agent_id: str, request: Request, state: State, session: Session) -> Response:
    agents.require_sink_plan(session.plan)
    await agents.get_agent(state.pool, session.organization_id, agent_id)
    return _form_page(request, session, {"auth_scheme": "HmacSha256"}, agent_id)


@router.post("/{agent_id}/sinks/new", response_class=HTMLResponse)
async def create_sink(
    agent_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    await agents.get_agent(state.pool, session.organization_id, agent_id)  # 404 before 400
    secret, made = _secret(form, str(form.get("auth_scheme") or ""))
    try:
        body = await _body(state, session, form, None, secret)
        created = await agents.create_data_source(
            state.pool, state.settings, session.organization_id, session.plan, agent_id, body
        )
    except ApiError as exc:
        # The API's own message (URL refused, secret, plan, quota…) on the form as filled.
        return _form_page(request, session, form, agent_id, failed=exc)
    if made:
        return _shown_once(request, session, created, secret or "", "Results sink created")
    return redirect(f"{APP}/agents/sinks/{created.id}?notice=created", session)


@router.get("/sinks")
async def sinks(session: Session) -> Response:
    """The crumbs' "Agent sinks" (a sink's pages share the doors' templates): the list."""
    return redirect(f"{APP}/agents", session)


@router.get("/sinks/{ds_id}", response_class=HTMLResponse)
async def show_sink(ds_id: str, request: Request, state: State, session: Session) -> Response:
    sink = await _sink(state, session, ds_id)
    agent = await agents.get_agent(state.pool, session.organization_id, sink.agent_id or "")
    shown = await endpoint_context(request, state, session, sink)
    return render(
        request,
        "sink.html",
        session,
        page=SINK_PAGE,
        agent=agent,
        auth_scheme=WIRE_AUTH_SCHEMES[sink.signature_scheme],
        can_test=True,
        generated=GENERATED,
        **shown,
    )


@router.get("/sinks/{ds_id}/edit", response_class=HTMLResponse)
async def edit_sink(ds_id: str, request: Request, state: State, session: Session) -> Response:
    sink = await _sink(state, session, ds_id)
    form = {
        "name": sink.name or "",
        "auth_scheme": WIRE_AUTH_SCHEMES[sink.signature_scheme],
        "rate_limit": sink.rate_limit_per_second or "",
    }
    return _form_page(request, session, form, sink.agent_id or "", sink=sink)


async def _replace(
    state: State, session: Session, sink: Endpoint, form: dict[str, Any], secret: str | None
) -> Endpoint:
    body = await _body(state, session, form, sink, secret)
    org_id, plan = session.organization_id, session.plan
    return await agents.replace_data_source(
        state.pool, state.settings, org_id, plan, sink.agent_id or "", sink.id, body
    )


@router.post("/sinks/{ds_id}/edit", response_class=HTMLResponse)
async def update_sink(
    ds_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    sink = await _sink(state, session, ds_id)
    try:
        await _replace(state, session, sink, form, str(form.get("secret") or "") or None)
    except ApiError as exc:
        return _form_page(request, session, form, sink.agent_id or "", sink=sink, failed=exc)
    return redirect(f"{APP}/agents/sinks/{ds_id}?notice=saved", session)


@router.post("/sinks/{ds_id}/status")
async def set_sink_status(ds_id: str, state: State, session: Session, form: Form) -> Response:
    sink = await _sink(state, session, ds_id)
    wanted, notice = status_change(form)
    await _replace(state, session, sink, {"status": wanted.value}, None)
    return redirect(f"{APP}/agents/sinks/{ds_id}?notice={notice}", session)


@router.post("/sinks/{ds_id}/rotate", response_class=HTMLResponse)
async def replace_secret(
    ds_id: str, request: Request, state: State, session: Session, form: Form
) -> Response:
    """A new secret in place of the old one at once (a sink's secret is the user's own: the
    API replaces it with a PUT, no grace window); generated here when left empty."""
    sink = await _sink(state, session, ds_id)
    secret, made = _secret(form, WIRE_AUTH_SCHEMES[sink.signature_scheme])
    if secret is None:
        raise BadRequestError('secret: give the new "user:password" for Basic')
    replaced = await _replace(state, session, sink, {}, secret)
    if made:
        return _shown_once(request, session, replaced, secret, "Secret replaced")
    return redirect(f"{APP}/agents/sinks/{ds_id}?notice=rotated", session)


@router.post("/sinks/{ds_id}/test")
async def send_test(ds_id: str, state: State, session: Session, form: Form) -> Response:
    del form  # checked for CSRF; nothing else in it
    sink = await _sink(state, session, ds_id)  # 404 before it counts against limits
    org_id = session.organization_id
    check_test_rate(state, org_id, ds_id)
    delivery_id = await agents.send_test(
        state.pool, state.outbox, org_id, session.plan, sink.agent_id or "", ds_id
    )
    return redirect(f"{APP}/agents/sinks/{ds_id}?tested={delivery_id}", session)


@router.post("/sinks/{ds_id}/recover")
async def recover(ds_id: str, state: State, session: Session, form: Form) -> Response:
    sink = await _sink(state, session, ds_id)  # 404 before 400
    count = await recover_since(state, session.organization_id, ds_id, form, sink.kind)
    return redirect(f"{APP}/agents/sinks/{ds_id}?notice=recovered&count={count}", session)


@router.get("/sinks/{ds_id}/delete", response_class=HTMLResponse)
async def confirm_delete(ds_id: str, request: Request, state: State, session: Session) -> Response:
    sink = await _sink(state, session, ds_id)
    return render(request, "delete.html", session, page=SINK_PAGE, endpoint=sink)


@router.post("/sinks/{ds_id}/delete")
async def delete_sink(ds_id: str, state: State, session: Session, form: Form) -> Response:
    del form
    sink = await _sink(state, session, ds_id)
    org_id, plan = session.organization_id, session.plan
    await agents.delete_data_source(state.pool, org_id, plan, sink.agent_id or "", ds_id)
    return redirect(f"{APP}/agents?notice=deleted", session)
