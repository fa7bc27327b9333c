"""The Jobs page's "Recover since T" for mapping-job and report-job webhooks, on the platform
as real subprocesses: in the real browser, a DEAD delivery (five 500s) and a PARKED one (a
410 that disabled its webhook) re-sent to the mended receiver, the webhook re-activated; over
HTTP, bad input and a plan-downgraded webhook as pages with their reason, never a 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from harness.receiver import Receiver
from harness.stack import Stack
from harness.waiting import eventually
from tests.api.conftest import insert_delivery
from tests.dashboard.conftest import auth, nav, shot, sign_in
from tests.dashboard.test_dashboard_http import UNREACHABLE, csrf_of, signed_in
from tests.support.factories import REPORT_JOB_REQUEST


async def mapping_job(api: httpx.AsyncClient, org: dict[str, str], url: str) -> tuple[str, str]:
    """A mapping job with its webhook at `url`: (job id, webhook id)."""
    made = await api.post("/api/v1/mapping-jobs", headers=auth(org), json={"webhook": {"url": url}})
    assert made.status_code == 201, made.text
    return made.json()["jobId"], made.json()["webhook"]["id"]


async def report_job(
    api: httpx.AsyncClient, org: dict[str, str], db_pool: asyncpg.Pool, url: str | None
) -> tuple[str, str | None]:
    """A report job (with its webhook at `url`, if any): (job id, webhook id)."""
    body = {**REPORT_JOB_REQUEST, **({"webhook": {"url": url}} if url else {})}
    made = await api.post("/api/v1/reports/jobs", headers=auth(org), json=body)
    assert made.status_code == 202, made.text
    job_id = made.json()["jobId"]
    webhook_id = await db_pool.fetchval(
        "SELECT webhook_endpoint_id FROM report_jobs WHERE id = $1", job_id
    )
    return job_id, webhook_id


async def only_delivery(db_pool: asyncpg.Pool, endpoint_id: str, status: str) -> asyncpg.Record:
    """The endpoint's one delivery, once it is `status`."""
    rows = await eventually(
        lambda: db_pool.fetch(
            "SELECT id, event_id, status FROM deliveries WHERE endpoint_id = $1", endpoint_id
        ),
        lambda found: [r["status"] for r in found] == [status],
        timeout=30,
    )
    return rows[0]


async def test_recover_job_webhooks_from_the_jobs_page(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org(plan="PRO")
    # Five 500s use up a job webhook's attempts (DEAD); the receiver answers 200 after.
    job_id, job_hook = await mapping_job(api, org, receiver.script("/job-down", [500] * 5 + [200]))
    done = await api.post(
        f"/api/v1/mapping-jobs/{job_id}/complete",
        headers=auth(org),
        json={"stats": {"total": 1, "matched": 1, "unmatched": 0}, "results": []},
    )
    assert done.status_code == 200, done.text
    # A 410 disables the report job's webhook at once (ENDPOINT_GONE), its delivery PARKED.
    rjob_id, report_hook = await report_job(
        api, org, db_pool, receiver.script("/report-gone", [410, 200])
    )
    assert report_hook is not None
    done = await api.post(
        f"/api/v1/reports/jobs/{rjob_id}/complete",
        headers=auth(org),
        json={"report": {"markdown": "m"}},
    )
    assert done.status_code == 200, done.text
    dead = await only_delivery(db_pool, job_hook, "DEAD")
    parked = await only_delivery(db_pool, report_hook, "PARKED")

    await sign_in(page, org["apiToken"])
    await nav(page, "Mapping jobs")
    job_row = page.locator("tr", has_text=job_id)
    report_row = page.locator("tr", has_text=rjob_id)
    await expect(job_row).to_contain_text("ACTIVE")
    await expect(report_row).to_contain_text("INACTIVE")
    await expect(report_row).to_contain_text("deactivated: ENDPOINT_GONE")
    await expect(job_row.get_by_label("Recover since (UTC)")).not_to_have_value("")
    await shot(page, "37-jobs-webhooks")

    await job_row.get_by_role("button", name="Recover").click()
    await page.wait_for_url("**/app/jobs?notice=recovered&count=1")
    await expect(page.get_by_role("status")).to_have_text("Recovering: 1 deliveries sent again.")
    arrived = await receiver.wait_for("/job-down", 6)
    assert arrived[-1].json()["data"]["mappingJobId"] == job_id
    assert (await only_delivery(db_pool, job_hook, "SUCCEEDED"))["event_id"] == dead["event_id"]

    # The report job's recover re-activates its webhook, then re-sends the PARKED delivery.
    await report_row.get_by_role("button", name="Recover").click()
    await expect(page.get_by_role("status")).to_have_text("Recovering: 1 deliveries sent again.")
    await expect(report_row).not_to_contain_text("INACTIVE")
    await expect(report_row).not_to_contain_text("ENDPOINT_GONE")
    await receiver.wait_for("/report-gone", 2)
    assert (await only_delivery(db_pool, report_hook, "SUCCEEDED"))["event_id"] == parked[
        "event_id"
    ]
    await shot(page, "38-jobs-recovered")


@pytest.mark.parametrize("kind", ["mapping", "report"])
async def test_bad_job_recovers_are_pages_with_their_reason_never_a_500(
    kind: str, stack: Stack, api: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org(plan="PRO")
    if kind == "mapping":
        job_id, webhook_id = await mapping_job(api, org, UNREACHABLE)
        bare = await api.post("/api/v1/mapping-jobs", headers=auth(org), json={})
        no_webhook = bare.json()["jobId"]
    else:
        job_id, webhook_id = await report_job(api, org, db_pool, UNREACHABLE)
        no_webhook, _ = await report_job(api, org, db_pool, None)
    assert webhook_id is not None
    _, delivery_id = await insert_delivery(db_pool, org["organizationId"], webhook_id)
    client = await signed_in(stack, org)
    try:
        csrf = await csrf_of(client)
        recover = f"/app/jobs/{job_id}/recover"
        for url, form, status, says in (
            (recover, {"csrf": csrf, "since": "yesterday"}, 400, "since: not a date and time"),
            (recover, {"csrf": csrf}, 400, "since: give the date and time"),
            (
                f"/app/jobs/{no_webhook}/recover",
                {"csrf": csrf, "since": "2026-01-01T00:00"},
                404,
                "has no webhook",
            ),
            (
                "/app/jobs/dest_nope/recover",
                {"csrf": csrf, "since": "2026-01-01T00:00"},
                404,
                "not found",
            ),
            (recover, {"since": "2026-01-01T00:00"}, 403, "This form expired"),  # no CSRF token
        ):
            response = await client.post(url, data=form)
            assert response.status_code == status, (url, form, response.text)
            assert 'role="alert"' in response.text and says in response.text, response.text
        # A webhook a plan downgrade disabled stays off: the API's 409, with its reason.
        await db_pool.execute(
            "UPDATE endpoints SET status = 'INACTIVE', deactivated_reason = 'PLAN_DOWNGRADE'"
            " WHERE id = $1",
            webhook_id,
        )
        page = await client.get("/app/jobs")
        assert "deactivated: PLAN_DOWNGRADE" in page.text
        response = await client.post(recover, data={"csrf": csrf, "since": "2026-01-01T00:00"})
        assert response.status_code == 409 and 'role="alert"' in response.text
        assert "INACTIVE since a plan downgrade" in response.text
        status = await db_pool.fetchval("SELECT status FROM deliveries WHERE id = $1", delivery_id)
        assert status == "DEAD"  # nothing was re-sent by any of them
    finally:
        await client.aclose()
