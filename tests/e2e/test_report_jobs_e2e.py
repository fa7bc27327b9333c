"""Door F (seed 004, Mappa report jobs) through the real api, dispatcher and senders to a
real receiver: the page's envelope and `mappa-signature` as received, checked by the Python
SDK and by the page's own manual recipe; `id` the same on every attempt; five attempts, then
DEAD; the org secret's rotation window; the SDK's reports calls against the running api."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from libs.domain.retry_policy import JOB_WEBHOOK_POLICY
from libs.sdk import Mappa
from libs.sdk.mappa import ReportCompletedData, ReportFailedData, ReportJobFailed
from tests.e2e.conftest import auth
from tests.support.factories import REPORT_JOB_REQUEST

JOBS = "/api/v1/reports/jobs"
SECRET = "/api/v1/organization/webhook-secret"
JOB = REPORT_JOB_REQUEST


async def call(client: httpx.AsyncClient, org: dict, method: str, path: str, body=None) -> dict:
    response = await client.request(method, path, headers=auth(org), json=body)
    assert response.is_success, response.text
    return response.json()


async def revealed_secret(client: httpx.AsyncClient, org: dict) -> str:
    return (await call(client, org, "GET", f"{SECRET}?reveal=true"))["webhookSecret"]


def page_manual_verify(payload: str, signature: str, secret: str) -> bool:
    """The page's "Manual verification (without SDK)" recipe, line for line in Python."""
    t_part, v1_part = signature.split(",")[:2]
    timestamp = t_part.split("=")[1]
    received = v1_part.split("=")[1]
    if abs(int(time.time()) - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return hmac.compare_digest(bytes.fromhex(received), expected.digest())


def sdk_verifies(request: ReceivedRequest, secret: str) -> bool:
    try:
        Mappa().webhooks.verify_signature(
            payload=request.body.decode(), headers=request.headers, secret=secret
        )
    except Exception:
        return False
    return True


async def test_completed_report_reaches_the_job_webhook_as_the_page_says(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    secret = await revealed_secret(api_client, org)
    url = receiver.script("/webhooks/mappa", [500, 401, 200])
    job = await call(api_client, org, "POST", JOBS, {**JOB, "webhook": {"url": url}})
    done = await call(
        api_client, org, "POST", f"{JOBS}/{job['jobId']}/complete", {"report": {"markdown": "#"}}
    )
    got = await receiver.wait_for("/webhooks/mappa", 3, timeout=30)
    ids = set()
    for request in got:
        body = request.json()
        assert set(body) == {"id", "type", "createdAt", "data"}
        assert body["type"] == "report.completed"
        assert body["data"] == {
            "jobId": job["jobId"],
            "reportId": done["reportId"],
            "status": "completed",
        }
        assert body["id"].startswith("evt_") and body["createdAt"].endswith("Z")
        ids.add(body["id"])
        assert request.headers["Content-Type"] == "application/json"
        signature = request.headers["mappa-signature"]
        assert "X-Webhook-Signature" not in request.headers
        assert sdk_verifies(request, secret)
        assert page_manual_verify(request.body.decode(), signature, secret)
        assert not sdk_verifies(request, secret + "x")
    assert len(ids) == 1  # the page's receivers deduplicate on event.id

    event = Mappa().webhooks.parse_event(got[-1].body)
    assert isinstance(event.data, ReportCompletedData)
    assert event.data.report_id == done["reportId"]
    with Mappa(org["apiToken"], stack.api_url) as mappa:
        report = await asyncio.to_thread(mappa.reports.get, event.data.report_id)
    assert report.markdown == "#" and report.job_id == job["jobId"]


async def test_a_failing_receiver_gets_five_attempts_then_the_delivery_is_dead(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    """Any non-2xx is retried (a 400 included), five attempts in all, then DEAD."""
    assert JOB_WEBHOOK_POLICY.max_attempts == 5
    assert JOB_WEBHOOK_POLICY.delays_s == (5, 30, 300, 1800)
    org = stack.create_org()
    url = receiver.script("/failing", [400, 302, 503, 404, 500, 200])
    job = await call(api_client, org, "POST", JOBS, {**JOB, "webhook": {"url": url}})
    error = {"code": "target_not_found", "message": "Could not identify target speaker"}
    await call(api_client, org, "POST", f"{JOBS}/{job['jobId']}/fail", {"error": error})
    deadline = time.monotonic() + 40
    status = None
    while time.monotonic() < deadline:
        status = await db_pool.fetchval(
            "SELECT d.status FROM deliveries d JOIN report_jobs j"
            " ON j.webhook_endpoint_id = d.endpoint_id WHERE j.id = $1",
            job["jobId"],
        )
        if status == "DEAD":
            break
        await asyncio.sleep(0.2)
    assert status == "DEAD"
    got = receiver.on("/failing")
    assert len(got) == 5
    assert len({r.json()["id"] for r in got}) == 1
    event = Mappa().webhooks.parse_event(got[0].body)
    assert event.type == "report.failed" and isinstance(event.data, ReportFailedData)
    assert got[0].json()["data"] == {"jobId": job["jobId"], "status": "failed", "error": error}


async def test_after_a_rotation_both_secrets_verify_for_the_grace_window(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    old = await revealed_secret(api_client, org)
    new = (await call(api_client, org, "POST", f"{SECRET}/rotate"))["webhookSecret"]
    assert await revealed_secret(api_client, org) == new
    url = receiver.url("/rotated")
    job = await call(api_client, org, "POST", JOBS, {**JOB, "webhook": {"url": url}})
    await call(
        api_client, org, "POST", f"{JOBS}/{job['jobId']}/complete", {"report": {"markdown": "m"}}
    )
    [request] = await receiver.wait_for("/rotated", 1)
    assert request.headers["mappa-signature"].count("v1=") == 2
    assert sdk_verifies(request, old) and sdk_verifies(request, new)
    # The page's manual recipe reads the first v1: the new secret's.
    assert page_manual_verify(request.body.decode(), request.headers["mappa-signature"], new)

    await call(api_client, org, "POST", f"{SECRET}/rotate", {"gracePeriodSeconds": 0})
    newest = await revealed_secret(api_client, org)
    url = receiver.url("/after")
    job = await call(api_client, org, "POST", JOBS, {**JOB, "webhook": {"url": url}})
    await call(
        api_client, org, "POST", f"{JOBS}/{job['jobId']}/complete", {"report": {"markdown": "m"}}
    )
    [request] = await receiver.wait_for("/after", 1)
    assert sdk_verifies(request, newest) and not sdk_verifies(request, new)


async def test_the_sdk_generates_a_report_and_reports_a_failed_job(
    stack: Stack, api_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """generate_from_url creates a job and waits; here the test plays the report engine."""
    org = stack.create_org()

    async def engine(outcome: str, body: dict) -> None:
        while True:
            jobs = await db_pool.fetch(
                "SELECT id FROM report_jobs WHERE organization_id = $1 AND status = 'queued'",
                org["organizationId"],
            )
            if jobs:
                await call(api_client, org, "POST", f"{JOBS}/{jobs[0]['id']}/{outcome}", body)
                return
            await asyncio.sleep(0.05)

    with Mappa(api_key=org["apiToken"], base_url=stack.api_url) as mappa:
        job_args = {"url": JOB["url"], "output": JOB["output"], "target": JOB["target"]}
        generate = asyncio.to_thread(
            mappa.reports.generate_from_url, **job_args, timeout_sec=20, poll_interval_sec=0.05
        )
        report, _ = await asyncio.gather(
            generate, engine("complete", {"report": {"markdown": "# done", "score": 7}})
        )
        assert report.markdown == "# done" and report.model_extra == {"score": 7}

        failing = asyncio.to_thread(
            mappa.reports.generate_from_url, **job_args, timeout_sec=20, poll_interval_sec=0.05
        )
        error = {"code": "target_not_found", "message": "Could not identify target speaker"}
        results = await asyncio.gather(
            failing, engine("fail", {"error": error}), return_exceptions=True
        )
        assert isinstance(results[0], ReportJobFailed) and results[0].code == "target_not_found"

        with pytest.raises(TimeoutError):
            await asyncio.to_thread(
                mappa.reports.generate_from_url, **job_args, timeout_sec=0.3, poll_interval_sec=0.05
            )


def readme_python_blocks() -> list[str]:
    readme = Path(__file__).resolve().parents[2] / "libs" / "sdk" / "README.md"
    return re.findall(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)


async def test_the_sdk_readmes_examples_run_as_written(
    stack: Stack,
    api_client: httpx.AsyncClient,
    receiver: Receiver,
    db_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libs/sdk/README.md's two Python blocks, with only the host substituted: the client
    part (a job with a webhook, then generate_from_url, which waits while the test plays the
    report engine), then the handler part on the delivery that job's webhook received."""
    client_part, handler_part = readme_python_blocks()
    org = stack.create_org()
    secret = await revealed_secret(api_client, org)
    monkeypatch.setenv("MAPPA_API_KEY", org["apiToken"])
    monkeypatch.setenv("MAPPA_WEBHOOK_SECRET", secret)
    client_part = client_part.replace("https://hookpost.example.com", stack.api_url)
    client_part = client_part.replace("https://yourapp.com", receiver.url(""))
    namespace: dict = {}

    async def engine() -> None:
        done: set[str] = set()
        while len(done) < 2:
            for row in await db_pool.fetch(
                "SELECT id FROM report_jobs WHERE organization_id = $1 AND status = 'queued'",
                org["organizationId"],
            ):
                body = {"report": {"markdown": f"# report of {row['id']}"}}
                await call(api_client, org, "POST", f"{JOBS}/{row['id']}/complete", body)
                done.add(row["id"])
            await asyncio.sleep(0.05)

    await asyncio.wait_for(
        asyncio.gather(asyncio.to_thread(exec, client_part, namespace), engine()), timeout=60
    )
    assert namespace["report"].markdown.startswith("# report of rjob_")
    [delivery] = await receiver.wait_for("/webhooks/mappa", 1)

    handler = {"mappa": namespace["mappa"], "os": os}
    handler |= {"raw_body": delivery.body, "request_headers": delivery.headers}
    await asyncio.to_thread(exec, handler_part, handler)
    assert handler["event"].data.job_id == namespace["receipt"].job_id
    assert handler["report"].markdown == f"# report of {namespace['receipt'].job_id}"
    # The verifying part alone, its except branch marked: taken for a tampered body only.
    verifying = handler_part.split("event = ")[0].replace("...  # answer 401", "rejected = 401")
    genuine = {**handler}
    await asyncio.to_thread(exec, verifying, genuine)
    assert "rejected" not in genuine
    tampered = {**handler, "raw_body": delivery.body.replace(b"completed", b"complete!")}
    await asyncio.to_thread(exec, verifying, tampered)
    assert tampered["rejected"] == 401
