"""Tenancy: every api route with an id, called with another org's token, answers 404 and
changes nothing.

The routes come from the api's own OpenAPI schema, so a route added later without a tenancy
check fails here until it has one (or is named below, with the reason it is exempt).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from services.api.app import create_app
from tests.api.conftest import Client, MakeClient

# Routes with an id that are not an org's resource, and why.
EXEMPT = {
    # the organization id is the admin's to name (admin token, not an org's)
    ("PUT", "/api/v1/admin/organizations/{organization_id}/plan"),
    ("DELETE", "/api/v1/admin/organizations/{organization_id}"),  # erasure, the admin's too
    ("POST", "/api/v1/admin/organizations/{organization_id}/portal-links"),
    # a signed link: no token at all; its signature is checked instead (tests/api/test_exports.py)
    ("GET", "/api/v1/export-files/{file_id}/download"),
}

# A valid body for each route that takes one: the 404 must not hide behind a 400.
URL = "http://127.0.0.1:9/tenancy"
SINK = {  # an agent results sink: the body of its POST and its PUT
    "role": "RESULTS_SINK",
    "type": "HTTPS_WEBHOOK",
    "config": {"url": URL, "authScheme": "Bearer"},
    "secret": {"value": "tenancy-token"},
    "format": "JSON",
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/webhook-subscriptions/{subscription_id}"): {
        "name": "x",
        "webhookUrl": URL,
        "events": ["MAPPING_COMPLETED"],
    },
    ("PUT", "/api/v1/delivery-destinations/{destination_id}"): {
        "type": "WEBHOOK",
        "webhookUrl": URL,
        "events": ["mapping.completed"],
    },
    ("POST", "/api/v1/delivery-destinations/{destination_id}/rotate-secret"): {
        "gracePeriodSeconds": 0
    },
    ("PUT", "/api/v1/export-webhooks/{webhook_id}"): {"url": URL, "active": False},
    ("POST", "/api/v1/mapping-jobs/{job_id}/complete"): {
        "stats": {"total": 1, "matched": 1, "unmatched": 0},
        "results": [{"partnerRowId": "row_1"}],
    },
    ("POST", "/api/v1/mapping-jobs/{job_id}/fail"): {"error": {"code": "x", "message": "y"}},
    ("POST", "/api/v1/reports/jobs/{report_job_id}/complete"): {"report": {"markdown": "m"}},
    ("POST", "/api/v1/reports/jobs/{report_job_id}/fail"): {"error": {"code": "x", "message": "y"}},
    ("PATCH", "/api/v1/agents/{agent_id}"): {"status": "INACTIVE"},
    ("PUT", "/api/v1/agents/{agent_id}/rules"): {
        "data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 0}
    },
    ("POST", "/api/v1/agents/{agent_id}/data-sources"): SINK,
    ("PUT", "/api/v1/agents/{agent_id}/data-sources/{ds_id}"): SINK,
    **{
        ("POST", f"{path}/recover"): {"since": "2026-01-01T00:00:00Z"}
        for path in (
            "/api/v1/webhook-subscriptions/{subscription_id}",
            "/api/v1/delivery-destinations/{destination_id}",
            "/api/v1/export-webhooks/{webhook_id}",
            "/api/v1/agents/{agent_id}/data-sources/{ds_id}",
            "/api/v1/mapping-jobs/{job_id}/webhook",
            "/api/v1/reports/jobs/{report_job_id}/webhook",
        )
    },
}

# Every table an org's resources live in: their whole contents must not change.
TABLES = [
    "organizations",
    "endpoints",
    "events",
    "deliveries",
    "delivery_attempts",
    "agents",
    "mapping_jobs",
    "export_files",
    "dashboard_portal_links",
    "endpoint_failures",
    "report_jobs",
    "reports",
]


def routes_with_ids() -> list[tuple[str, str, bool]]:
    spec = create_app().openapi()
    found = []
    for path, operations in spec["paths"].items():
        if "{" not in path:
            continue
        for method, operation in operations.items():
            found.append((method.upper(), path, "requestBody" in operation))
    return found


async def owner_resources(owner: Client, db_pool: asyncpg.Pool) -> dict[str, str]:
    """One of everything an org can own, by the path parameter that names it."""

    async def created(response: Any) -> dict[str, Any]:
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    subscription = await created(
        await owner.post("/api/v1/webhook-subscriptions", json=BODIES[next(iter(BODIES))])
    )
    destination = await created(
        await owner.post(
            "/api/v1/delivery-destinations",
            json=BODIES[("PUT", "/api/v1/delivery-destinations/{destination_id}")],
        )
    )
    export_webhook = await created(
        await owner.post("/api/v1/export-webhooks", json={"url": URL, "active": True})
    )
    agent = await created(await owner.post("/api/v1/agents", json={"name": "owner's"}))
    sink = await created(
        await owner.post(
            f"/api/v1/agents/{agent['id']}/data-sources",
            json=BODIES[("POST", "/api/v1/agents/{agent_id}/data-sources")],
        )
    )
    # With a webhook: its recover's 404 must be the tenancy's, not "the job has none".
    job_body = {"agentId": agent["id"], "webhook": {"url": URL}}
    job = await created(await owner.post("/api/v1/mapping-jobs", json=job_body))
    await created(
        await owner.post(
            f"/api/v1/mapping-jobs/{job['jobId']}/complete",
            json=BODIES[("POST", "/api/v1/mapping-jobs/{job_id}/complete")],
        )
    )
    export = await created(await owner.post(f"/api/v1/mapping-jobs/{job['jobId']}/exports"))
    event = await created(
        await owner.post(
            "/api/v1/events", json={"type": "mapping.completed", "data": {"mappingJobId": "j"}}
        )
    )
    # A queued report job (what the producer calls act on), and a finished one's report.
    report_body = {
        "url": "https://example.com/call.mp3",
        "output": {"template": "t"},
        "target": {"strategy": "dominant"},
        "webhook": {"url": URL},
    }
    report_job = await created(await owner.post("/api/v1/reports/jobs", json=report_body))
    finished = await created(await owner.post("/api/v1/reports/jobs", json=report_body))
    report = await created(
        await owner.post(
            f"/api/v1/reports/jobs/{finished['jobId']}/complete", json={"report": {"markdown": "m"}}
        )
    )
    # A DEAD delivery of the owner's subscription: the kind a manual retry acts on.
    delivery_id = new_id(IdPrefix.DELIVERY)
    await db_pool.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
        " attempt_count) VALUES ($1, $2, $3, $4, 'DEAD', 4)",
        delivery_id,
        event["eventId"],
        subscription["id"],
        owner.org_id,
    )
    portal_link = await created(await owner.post("/api/v1/portal-links"))
    return {
        "link_id": portal_link["id"],
        "subscription_id": subscription["id"],
        "destination_id": destination["id"],
        "webhook_id": export_webhook["id"],
        "agent_id": agent["id"],
        "ds_id": sink["id"],
        "job_id": job["jobId"],
        "file_id": export["exportFileId"],
        "event_id": event["eventId"],
        "delivery_id": delivery_id,
        "report_job_id": report_job["jobId"],
        "report_id": report["reportId"],
    }


# The outbox relay may stamp `published_at` at any moment: that is not the intruder's doing.
ROW_TEXT = {"events": "(t.id, t.organization_id, t.type, t.data, t.dispatched_at)::text"}


async def snapshot(db_pool: asyncpg.Pool) -> dict[str, list[str]]:
    rows = {}
    for table in TABLES:
        query = f"SELECT {ROW_TEXT.get(table, 't::text')} AS row FROM {table} t"
        rows[table] = sorted(r["row"] for r in await db_pool.fetch(query))
    return rows


async def test_every_route_with_an_id_is_404_for_another_org_and_changes_nothing(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    owner = await make_client(Plan.PRO_MAX)
    intruder = await make_client(Plan.PRO_MAX)
    ids = await owner_resources(owner, db_pool)
    before = await snapshot(db_pool)

    checked, answers = [], {}
    for method, path, takes_body in routes_with_ids():
        if (method, path) in EXEMPT:
            continue
        names = re.findall(r"{(\w+)}", path)
        missing = [name for name in names if name not in ids]
        assert not missing, f"{method} {path}: no owner resource for {missing}; add one"
        url = path.format(**ids)
        body = BODIES.get((method, path))
        assert body is not None or not takes_body, f"{method} {path}: add a valid body"
        response = await intruder.http.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {intruder.token}"},
        )
        answers[f"{method} {path}"] = response.status_code
        if response.status_code == 404:
            assert response.json()["error"]["code"] == "NOT_FOUND"
        checked.append((method, path))

    assert {route: status for route, status in answers.items() if status != 404} == {}
    assert len(checked) >= 30
    assert await snapshot(db_pool) == before


@pytest.mark.parametrize("method, path", sorted(EXEMPT))
def test_exempt_routes_still_exist(method: str, path: str) -> None:
    # An exemption for a route that is gone would silently exempt a new one of that name.
    assert (method, path) in {(m, p) for m, p, _ in routes_with_ids()}
