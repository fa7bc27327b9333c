"""Door F (report jobs, SPEC §4F) through the real api, as the seed-004 tests drive it: the org
webhook secret from "Team Settings", a job with a webhook, the report engine's producer calls,
and what became of the job's delivery (PostgreSQL, the source of truth)."""

from __future__ import annotations

import hashlib
import hmac

import asyncpg
import httpx

from harness.waiting import first_is, poll
from tests.e2e.conftest import auth

JOBS = "/api/v1/reports/jobs"
SECRET = "/api/v1/organization/webhook-secret"
MEDIA = "https://example.com/call.mp3"


async def reveal_secret(client: httpx.AsyncClient, org: dict[str, str]) -> str:
    """The page's "Find your webhook secret … under Team Settings"."""
    response = await client.get(SECRET, params={"reveal": "true"}, headers=auth(org))
    assert response.status_code == 200, response.text
    return response.json()["webhookSecret"]


async def create_job(client: httpx.AsyncClient, org: dict[str, str], webhook_url: str) -> str:
    body = {
        "url": MEDIA,
        "output": {"template": "sales_playbook"},
        "webhook": {"url": webhook_url},
        "target": {"strategy": "dominant"},
    }
    response = await client.post(JOBS, json=body, headers=auth(org))
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


async def complete_job(
    client: httpx.AsyncClient, org: dict[str, str], job_id: str, markdown: str = "# Report"
) -> str:
    """The report engine's call: the job is done; `report.completed` goes out. The reportId."""
    response = await client.post(
        f"{JOBS}/{job_id}/complete", json={"report": {"markdown": markdown}}, headers=auth(org)
    )
    assert response.status_code == 200, response.text
    return response.json()["reportId"]


async def fail_job(
    client: httpx.AsyncClient, org: dict[str, str], job_id: str, code: str, message: str
) -> None:
    response = await client.post(
        f"{JOBS}/{job_id}/fail",
        json={"error": {"code": code, "message": message}},
        headers=auth(org),
    )
    assert response.status_code == 200, response.text


async def job_delivery(
    pool: asyncpg.Pool, job_id: str, status: str, timeout: float = 40
) -> asyncpg.Record:
    """The delivery to `job_id`'s webhook once it reaches `status` (SUCCEEDED, DEAD, …)."""
    reached, rows = await poll(
        lambda: pool.fetch(
            "SELECT d.status, d.attempt_count FROM deliveries d"
            " JOIN report_jobs j ON d.endpoint_id = j.webhook_endpoint_id WHERE j.id = $1",
            job_id,
        ),
        first_is(status),
        timeout,
        interval=0.2,
    )
    assert reached, f"the delivery of {job_id} is not {status} within {timeout}s: {rows}"
    return rows[0]


def mappa_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Signed as SPEC §4F says, by Python's hmac (not the SDK under test)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
