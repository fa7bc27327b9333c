"""Seed 004 (Mappa report jobs, door F) as its page's user meets it: the page's receiver,
written in Python with the Python SDK (tests/seeds/receivers/mappa_receiver.py) and run as a
real process, gets real deliveries from the real stack and answers 200 to each genuine one
(fetching the report, as the page's handler does), 401 to the page's "Test your endpoint"
curl (unsigned), to a tampered body and to a stale timestamp; the secret comes from "Team
Settings"; jobs are created with the SDK's create_job_from_url and the page's arguments."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from harness.process import Process, free_port
from harness.receiver import Receiver
from harness.stack import Stack
from libs.domain.signing import sign_v1
from libs.sdk import Mappa
from tests.e2e.conftest import auth
from tests.seeds.page import curl_commands, run_curl, text

P004 = "004-job-webhooks-and-sdk.txt"
# The page's "2. Add webhook to job" arguments (the webhook URL is the receiver's).
JOB = {
    "url": "https://example.com/interview.mp3",
    "output": {"template": "hiring_report"},
    "target": {"strategy": "dominant"},
}


class PageReceiver:
    def __init__(self, process: Process) -> None:
        self.process = process

    @property
    def url(self) -> str:
        return self.process.url("/webhooks/mappa")

    def handled(self) -> list[dict]:
        assert self.process.log_path is not None
        lines = self.process.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    async def wait_handled(self, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.handled()) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"the receiver handled {self.handled()}, not {count} events")


@pytest.fixture(scope="module")
def org(stack: Stack) -> dict:
    return stack.create_org(plan="FREE")


@pytest.fixture(scope="module")
async def page_receiver(
    stack: Stack, org: dict, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PageReceiver]:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        # "Find your webhook secret in the Mappa Dashboard under Team Settings."
        shown = await client.get(
            "/api/v1/organization/webhook-secret", params={"reveal": "true"}, headers=auth(org)
        )
    assert shown.status_code == 200, shown.text
    port = free_port()
    env = {
        **stack.env,
        "PORT": str(port),
        "MAPPA_API_KEY": org["apiToken"],
        "MAPPA_BASE_URL": stack.api_url,
        "MAPPA_WEBHOOK_SECRET": shown.json()["webhookSecret"],
    }
    log = tmp_path_factory.mktemp("page-receiver") / "receiver.log"
    argv = [sys.executable, "-m", "tests.seeds.receivers.mappa_receiver"]
    process = Process("mappa-receiver", argv, env=env, port=port, log_path=log)
    await asyncio.to_thread(process.start, "/readyz")
    try:
        yield PageReceiver(process)
    finally:
        await asyncio.to_thread(process.stop)


async def test_the_pages_test_curl_is_refused_by_the_pages_receiver(
    stack: Stack, org: dict, page_receiver: PageReceiver
) -> None:
    """ "Test your endpoint": an unsigned POST gets the handler's 401 "Invalid signature"."""
    base = page_receiver.url.removesuffix("/webhooks/mappa")
    result = run_curl(curl_commands(text(P004))[0], api=stack.api_url, token="", receiver=base)
    assert result.status == 401 and result.body == "Invalid signature"


async def test_a_completed_job_is_verified_and_its_report_fetched(
    stack: Stack,
    org: dict,
    api_client: httpx.AsyncClient,
    page_receiver: PageReceiver,
    db_pool: asyncpg.Pool,
) -> None:
    with Mappa(api_key=org["apiToken"], base_url=stack.api_url) as mappa:
        receipt = await asyncio.to_thread(
            mappa.reports.create_job_from_url, **JOB, webhook={"url": page_receiver.url}
        )
    assert receipt.status == "queued"
    before = len(page_receiver.handled())
    done = await api_client.post(
        f"/api/v1/reports/jobs/{receipt.job_id}/complete",
        headers=auth(org),
        json={"report": {"markdown": "# Hiring report\n\nStrong candidate."}},
    )
    assert done.status_code == 200, done.text
    handled = (await page_receiver.wait_handled(before + 1))[-1]
    assert handled["type"] == "report.completed"
    assert handled["markdown"] == "# Hiring report\n\nStrong candidate."
    assert handled["id"].startswith("evt_")
    row = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the attempt is recorded once the 200 is read
        row = await db_pool.fetchrow(
            "SELECT d.status, d.attempt_count FROM deliveries d JOIN report_jobs j"
            " ON j.webhook_endpoint_id = d.endpoint_id WHERE j.id = $1",
            receipt.job_id,
        )
        if row is not None and row["status"] != "PENDING":
            break
        await asyncio.sleep(0.1)
    assert row is not None and dict(row) == {"status": "SUCCEEDED", "attempt_count": 1}


async def test_a_failed_job_reaches_the_failure_branch(
    stack: Stack, org: dict, api_client: httpx.AsyncClient, page_receiver: PageReceiver
) -> None:
    with Mappa(api_key=org["apiToken"], base_url=stack.api_url) as mappa:
        receipt = await asyncio.to_thread(
            mappa.reports.create_job_from_url, **JOB, webhook={"url": page_receiver.url}
        )
    before = len(page_receiver.handled())
    error = {"code": "target_not_found", "message": "Could not identify target speaker"}
    failed = await api_client.post(
        f"/api/v1/reports/jobs/{receipt.job_id}/fail", headers=auth(org), json={"error": error}
    )
    assert failed.status_code == 200, failed.text
    handled = (await page_receiver.wait_handled(before + 1))[-1]
    assert handled == {"id": handled["id"], "type": "report.failed", "code": "target_not_found"}


async def test_tampered_and_stale_deliveries_get_401(
    org: dict, api_client: httpx.AsyncClient, receiver: Receiver, page_receiver: PageReceiver
) -> None:
    """A genuine delivery captured by the recording receiver, then replayed to the page's
    receiver as is (200), with one byte changed (401), and re-signed 10 minutes ago (401)."""
    page = page_receiver.url
    url = receiver.url("/capture")
    job = await api_client.post(
        "/api/v1/reports/jobs", headers=auth(org), json={**JOB, "webhook": {"url": url}}
    )
    job_id = job.json()["jobId"]
    await api_client.post(
        f"/api/v1/reports/jobs/{job_id}/complete",
        headers=auth(org),
        json={"report": {"markdown": "m"}},
    )
    [genuine] = await receiver.wait_for("/capture", 1, timeout=30)
    header = {"mappa-signature": genuine.headers["mappa-signature"]}
    async with httpx.AsyncClient() as client:
        ok = await client.post(page, content=genuine.body, headers=header)
        assert ok.status_code == 200, ok.text
        tampered = genuine.body.replace(b'"completed"', b'"completes"')
        bad = await client.post(page, content=tampered, headers=header)
        assert (bad.status_code, bad.text) == (401, "Invalid signature")
        secret = await _revealed(api_client, org)
        stale = {"mappa-signature": sign_v1(genuine.body, [secret], int(time.time()) - 600)}
        old = await client.post(page, content=genuine.body, headers=stale)
        assert (old.status_code, old.text) == (401, "Invalid signature")
        fresh = {"mappa-signature": sign_v1(genuine.body, [secret])}
        again = await client.post(page, content=genuine.body, headers=fresh)
        assert (again.status_code, again.text) == (200, "Already processed")  # event.id seen


async def _revealed(client: httpx.AsyncClient, org: dict) -> str:
    shown = await client.get(
        "/api/v1/organization/webhook-secret", params={"reveal": "true"}, headers=auth(org)
    )
    return str(shown.json()["webhookSecret"])
