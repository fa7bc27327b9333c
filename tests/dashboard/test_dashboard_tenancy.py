"""The dashboard's tenancy over plain HTTP against the real api process: another org's
session sees and touches nothing on any page or action."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from harness.stack import Stack
from libs.domain.ids import IdPrefix, new_id
from services.api.dashboard import router as dashboard
from tests.dashboard.conftest import auth
from tests.dashboard.plain_http import UNREACHABLE, csrf_of, signed_in
from tests.support.factories import REPORT_JOB_REQUEST


@pytest.fixture
async def owner_and_intruder(stack: Stack) -> AsyncIterator[tuple[dict, httpx.AsyncClient]]:
    owner, intruder = stack.create_org(plan="PRO_MAX"), stack.create_org(plan="PRO_MAX")
    client = await signed_in(stack, intruder)
    try:
        yield owner, client
    finally:
        await client.aclose()


async def owner_ids(api: httpx.AsyncClient, owner: dict, db_pool: asyncpg.Pool) -> dict[str, str]:
    async def made(path: str, body: dict | None) -> dict:
        response = await api.post(path, headers=auth(owner), json=body)
        assert response.status_code == 201, response.text
        return response.json()

    dest = await made(
        "/api/v1/delivery-destinations",
        {"type": "WEBHOOK", "webhookUrl": UNREACHABLE, "events": ["mapping.completed"]},
    )
    sub = await made(
        "/api/v1/webhook-subscriptions",
        {"name": "s", "webhookUrl": UNREACHABLE, "events": ["MAPPING_COMPLETED"]},
    )
    ewh = await made("/api/v1/export-webhooks", {"url": UNREACHABLE, "active": True})
    link = await made("/api/v1/portal-links", None)
    agent = await made("/api/v1/agents", {"name": "owner's agent"})
    sink = await made(
        f"/api/v1/agents/{agent['id']}/data-sources",
        {
            "role": "RESULTS_SINK",
            "type": "HTTPS_WEBHOOK",
            "config": {"url": UNREACHABLE, "authScheme": "HmacSha256"},
            "secret": {"value": "owner-secret"},
        },
    )
    job = await made("/api/v1/mapping-jobs", {"webhook": {"url": UNREACHABLE}})
    report_job = await api.post(
        "/api/v1/reports/jobs",
        headers=auth(owner),
        json={**REPORT_JOB_REQUEST, "webhook": {"url": UNREACHABLE}},
    )
    assert report_job.status_code == 202, report_job.text
    event = await api.post(
        "/api/v1/events", headers=auth(owner), json={"type": "mapping.failed", "data": {}}
    )
    delivery_id = new_id(IdPrefix.DELIVERY)
    await db_pool.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
        " attempt_count) VALUES ($1, $2, $3, $4, 'DEAD', 4)",
        delivery_id,
        event.json()["eventId"],
        dest["id"],
        owner["organizationId"],
    )
    return {
        "destinations": dest["id"],
        "webhooks": sub["id"],
        "export-webhooks": ewh["id"],
        "delivery_id": delivery_id,
        "link_id": link["id"],
        "agent_id": agent["id"],
        "ds_id": sink["id"],
        "job_id": job["jobId"],
        "report_job_id": report_job.json()["jobId"],
    }


def dashboard_routes_with_ids() -> set[tuple[str, str]]:
    found = set()
    for route in (r for module in dashboard.PAGES for r in module.router.routes):
        path = getattr(route, "path", "")
        named = set(re.findall(r"{(\w+)}", path)) - {"slug", "token"}
        if path.startswith("/app/") and named:
            for method in getattr(route, "methods", ()):
                if method in ("GET", "POST"):
                    found.add((method, path))
    return found


async def snapshot(db_pool: asyncpg.Pool, org_id: str) -> list[str]:
    rows = await db_pool.fetch(
        "SELECT t::text AS r FROM endpoints t WHERE organization_id = $1"
        " UNION ALL SELECT t::text FROM deliveries t WHERE organization_id = $1"
        " UNION ALL SELECT t::text FROM dashboard_portal_links t WHERE organization_id = $1"
        " UNION ALL SELECT (t.id, t.webhook_secret_enc)::text FROM organizations t WHERE id = $1",
        org_id,
    )
    return sorted(r["r"] for r in rows)


async def test_another_orgs_session_sees_and_touches_nothing_on_any_page_or_action(
    owner_and_intruder: tuple[dict, httpx.AsyncClient],
    api: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
) -> None:
    owner, intruder = owner_and_intruder
    ids = await owner_ids(api, owner, db_pool)
    csrf = await csrf_of(intruder)
    before = await snapshot(db_pool, owner["organizationId"])

    checked, answers = set(), {}
    for method, path in sorted(dashboard_routes_with_ids()):
        if "{slug}" in path:
            urls = [
                path.replace("{slug}", slug).replace("{endpoint_id}", ids[slug])
                for slug in ("destinations", "webhooks", "export-webhooks")
            ]
        elif "{job_id}" in path:  # the Jobs page's routes take either kind of job
            urls = [path.format(job_id=ids[kind]) for kind in ("job_id", "report_job_id")]
        else:
            urls = [path.format(**ids)]
        for url in urls:
            if method == "GET":
                response = await intruder.get(url)
            else:
                form = {
                    "csrf": csrf,
                    "status": "INACTIVE",
                    "url": UNREACHABLE,
                    "events": "mapping.completed",
                    "grace_seconds": "0",
                }
                response = await intruder.post(url, data=form)
            answers[f"{method} {url}"] = response.status_code
        checked.add((method, path))

    assert {k: v for k, v in answers.items() if v != 404} == {}
    assert checked == dashboard_routes_with_ids() and len(checked) >= 10
    # Lists, the log (even filtered by the owner's endpoint) and settings show none of it.
    for path, params in (
        ("/app/deliveries", {"endpoint": ids["destinations"]}),
        ("/app/deliveries/rows", {"endpoint": ids["destinations"]}),
        ("/app/deliveries", {}),
        ("/app/destinations", {}),
        ("/app/webhooks", {}),
        ("/app/export-webhooks", {}),
        ("/app/settings", {}),
        ("/app/jobs", {}),
        ("/app/agents", {}),
    ):
        response = await intruder.get(path, params=params)
        assert response.status_code == 200, path
        # (the id the request itself names is echoed in its filter form; nothing else is)
        shown = [v for v in ids.values() if v in response.text and v not in params.values()]
        assert not shown, path
    assert await snapshot(db_pool, owner["organizationId"]) == before
