"""Per-job webhooks (seed 004) and export webhooks (seed 000) through the real api,
dispatcher and senders, to a real receiver: payloads and headers as received, signatures
checked by Stripe's verifier, retry policies, the URL token, and one completion reaching the
job's URL, a subscription and an export webhook at once."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
import stripe

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from harness.waiting import first_is, poll
from tests.e2e.conftest import auth

JOBS = "/api/v1/mapping-jobs"
HOOKS = "/api/v1/export-webhooks"
SECRET = "/api/v1/organization/webhook-secret"
EXPORT_TOKEN = "abc123-export-t0ken"
JOB_TOKEN = "job-t0ken-xyz"
STATS = {"total": 3, "matched": 2, "unmatched": 1}
RESULTS = [{"sku": "A", "hotel": "Águila"}, {"sku": "B", "hotel": None}, {"sku": "C"}]


async def post(client: httpx.AsyncClient, org: dict, path: str, body: object = None) -> dict:
    response = await client.post(path, headers=auth(org), json=body)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def org_secret(client: httpx.AsyncClient, org: dict) -> str:
    """The org webhook secret in plaintext, as Team Settings reveals it."""
    response = await client.get(SECRET, headers=auth(org), params={"reveal": "true"})
    assert response.status_code == 200, response.text
    return str(response.json()["webhookSecret"])


async def rotate_at_once(client: httpx.AsyncClient, org: dict) -> str:
    """A new org webhook secret with no grace window: the old one stops signing now."""
    return (await post(client, org, f"{SECRET}/rotate", {"gracePeriodSeconds": 0}))["webhookSecret"]


def verifies(request: ReceivedRequest, secret: str) -> bool:
    """Stripe's own verifier: our v1 signatures are checked by code we did not write."""
    try:
        stripe.WebhookSignature.verify_header(
            request.body.decode(), request.headers["X-Webhook-Signature"], secret, tolerance=300
        )
    except stripe.SignatureVerificationError:
        return False
    return True


async def deliveries_to(pool: asyncpg.Pool, endpoint_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, status, attempt_count FROM deliveries WHERE endpoint_id = $1", endpoint_id
    )


async def wait_for_delivery(
    pool: asyncpg.Pool, endpoint_id: str, status: str, timeout: float = 40
) -> asyncpg.Record:
    reached, found = await poll(
        lambda: deliveries_to(pool, endpoint_id), first_is(status), timeout, interval=0.2
    )
    assert reached, f"no {status} delivery to {endpoint_id} within {timeout}s: {found}"
    return found[0]


async def test_completion_reaches_the_job_url_a_subscription_and_an_export_webhook(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    job_secret = await org_secret(api_client, org)
    sub = await post(
        api_client,
        org,
        "/api/v1/webhook-subscriptions",
        {
            "name": "all",
            "webhookUrl": receiver.script("/sub", [200]),
            "events": ["MAPPING_COMPLETED"],
        },
    )
    hook = await post(
        api_client,
        org,
        HOOKS,
        {"url": receiver.script("/export", [500, 200]) + f"?secret={EXPORT_TOKEN}"},
    )
    job = await post(
        api_client,
        org,
        JOBS,
        {"webhook": {"url": receiver.script("/job", [200]) + f"?token={JOB_TOKEN}"}},
    )
    done = await post(
        api_client, org, f"{JOBS}/{job['jobId']}/complete", {"stats": STATS, "results": RESULTS}
    )
    assert done["status"] == "COMPLETED" and done["exportFileId"]

    [at_job] = await receiver.wait_for("/job", 1)
    [at_sub] = await receiver.wait_for("/sub", 1)
    # The export webhook fails once first, so a sender logs an attempt naming its URL.
    at_export = (await receiver.wait_for("/export", 2))[1]

    # The job's own URL: mapping.completed, signed with the org webhook secret, token intact.
    envelope = at_job.json()
    assert envelope["type"] == "mapping.completed"
    assert envelope["apiVersion"] == "2026-06-01"
    assert at_job.headers["X-Webhook-Event"] == "mapping.completed"
    assert at_job.headers["X-Webhook-Delivery"] == envelope["id"]
    assert at_job.headers["Content-Type"] == "application/json"
    data = envelope["data"]
    assert data["mappingJobId"] == job["jobId"] and data["status"] == "COMPLETED"
    assert data["rowCount"] == 3 and data["stats"] == STATS
    assert data["exportFileId"] == done["exportFileId"] and data["completedAt"]
    assert parse_qs(at_job.query) == {"token": [JOB_TOKEN]}
    assert verifies(at_job, job_secret)

    # The subscription hears the same event, signed with its own secret.
    assert at_sub.json()["eventId"] == envelope["eventId"]
    assert verifies(at_sub, sub["signingSecret"]) and not verifies(at_sub, job_secret)

    # The export webhook: export.ready in the default envelope, token intact, file downloadable.
    ready = at_export.json()
    assert ready["type"] == "export.ready"
    assert at_export.headers["X-Webhook-Event"] == "export.ready"
    assert at_export.query == f"secret={EXPORT_TOKEN}"
    assert verifies(at_export, hook["signingSecret"])
    info = ready["data"]
    assert info["exportFileId"] == done["exportFileId"]
    assert info["mappingJobId"] == job["jobId"] and info["format"] == "CSV"
    assert info["rowCount"] == len(RESULTS)
    link = urlsplit(info["downloadUrl"])
    file = await api_client.get(f"{link.path}?{link.query}")  # no bearer token: the link is it
    assert file.status_code == 200
    assert len(file.content) == info["fileSize"]
    assert file.content.decode().splitlines()[0] == "sku,hotel"
    assert len(file.content.decode().splitlines()) == 1 + len(RESULTS)

    # The tokens never come back from the API, are encrypted at rest, and are in no log line
    # or metric.
    for path in (f"{JOBS}/{job['jobId']}", HOOKS, f"{HOOKS}/{hook['id']}"):
        text = (await api_client.get(path, headers=auth(org))).text
        assert EXPORT_TOKEN not in text and JOB_TOKEN not in text
    for row in await db_pool.fetch(
        "SELECT url_enc, url_masked FROM endpoints WHERE organization_id = $1",
        org["organizationId"],
    ):
        assert (
            EXPORT_TOKEN.encode() not in row["url_enc"] and JOB_TOKEN.encode() not in row["url_enc"]
        )
        assert EXPORT_TOKEN not in row["url_masked"] and JOB_TOKEN not in row["url_masked"]
    # (a first attempt is the dispatcher's own, a retry a sender's)
    workers = [stack.dispatcher, *stack.senders]
    logged = "".join(s.log_path.read_text(errors="replace") for s in workers)
    assert "/export?secret=••••" in logged  # the failed attempt's line, masked
    for service in stack.services():
        metrics = (await api_client.get(f"http://127.0.0.1:{service.port}/metrics")).text
        logs = service.log_path.read_text(errors="replace")
        for token in (EXPORT_TOKEN, JOB_TOKEN):
            assert token not in metrics and token not in logs, service.name


async def test_failure_reaches_the_job_url_and_rotation_switches_the_secret_at_once(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="FREE")
    old = await org_secret(api_client, org)
    first = await post(api_client, org, JOBS, {"webhook": {"url": receiver.script("/f1", [200])}})
    error = {"code": "target_not_found", "message": "Could not identify the target"}
    await post(api_client, org, f"{JOBS}/{first['jobId']}/fail", {"error": error})
    [failed] = await receiver.wait_for("/f1", 1)
    envelope = failed.json()
    assert envelope["type"] == "mapping.failed"
    assert failed.headers["X-Webhook-Event"] == "mapping.failed"
    assert envelope["data"]["mappingJobId"] == first["jobId"]
    assert envelope["data"]["status"] == "FAILED" and envelope["data"]["error"] == error
    assert verifies(failed, old)

    new = await rotate_at_once(api_client, org)
    second = await post(api_client, org, JOBS, {"webhook": {"url": receiver.script("/f2", [200])}})
    await post(api_client, org, f"{JOBS}/{second['jobId']}/complete", {"results": RESULTS})
    [after] = await receiver.wait_for("/f2", 1)
    assert after.json()["type"] == "mapping.completed"
    assert verifies(after, new)
    assert not verifies(after, old)  # no grace window: the old secret is invalid at once


async def test_a_job_webhook_hears_only_its_own_job(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    mine = await post(api_client, org, JOBS, {"webhook": {"url": receiver.script("/mine", [200])}})
    other = await post(
        api_client, org, JOBS, {"webhook": {"url": receiver.script("/other", [200])}}
    )
    await post(api_client, org, f"{JOBS}/{mine['jobId']}/complete", {"results": []})
    [request] = await receiver.wait_for("/mine", 1)
    assert request.json()["data"]["mappingJobId"] == mine["jobId"]
    await wait_for_delivery(db_pool, mine["webhook"]["id"], "SUCCEEDED")
    # The event is fully dispatched (its one delivery succeeded): the other job heard nothing.
    assert receiver.on("/other") == []
    assert await deliveries_to(db_pool, other["webhook"]["id"]) == []


@pytest.mark.parametrize(
    ("script", "status", "attempts"),
    [([500], "DEAD", 5), ([404, 422, 200], "SUCCEEDED", 3)],  # 410 disables: test_endpoint_health
)
async def test_job_webhook_retry_policy(
    stack: Stack,
    api_client: httpx.AsyncClient,
    receiver: Receiver,
    db_pool: asyncpg.Pool,
    script: list[int],
    status: str,
    attempts: int,
) -> None:
    """5 attempts (5 s, 30 s, 5 min, 30 min, scaled), 4xx retried like any failure."""
    org = stack.create_org()
    path = f"/retry-{status}"
    job = await post(api_client, org, JOBS, {"webhook": {"url": receiver.script(path, script)}})
    await post(api_client, org, f"{JOBS}/{job['jobId']}/complete", {"results": []})
    delivery = await wait_for_delivery(db_pool, job["webhook"]["id"], status, timeout=60)
    assert delivery["attempt_count"] == attempts
    requests = receiver.on(path)
    assert len(requests) == attempts
    assert len({r.json()["id"] for r in requests}) == attempts  # one envelope id per attempt
    assert len({r.json()["eventId"] for r in requests}) == 1


async def test_export_webhook_retry_policy_is_four_attempts(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    hook = await post(api_client, org, HOOKS, {"url": receiver.script("/export-dead", [503])})
    job = await post(api_client, org, JOBS, {})
    await post(api_client, org, f"{JOBS}/{job['jobId']}/complete", {"results": RESULTS})
    delivery = await wait_for_delivery(db_pool, hook["id"], "DEAD", timeout=60)
    assert delivery["attempt_count"] == 4
    assert len(receiver.on("/export-dead")) == 4


async def test_manual_export_reaches_active_export_webhooks_only(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    outsider = stack.create_org()
    await api_client.put("/api/v1/export-format", headers=auth(org), json={"format": "XLSX"})
    job = await post(api_client, org, JOBS, {})
    await post(api_client, org, f"{JOBS}/{job['jobId']}/complete", {"results": RESULTS})
    # Registered after completion: only the manual export can reach them.
    on = await post(api_client, org, HOOKS, {"url": receiver.script("/on", [200])})
    off = await post(
        api_client, org, HOOKS, {"url": receiver.script("/off", [200]), "active": False}
    )
    foreign = await post(api_client, outsider, HOOKS, {"url": receiver.script("/foreign", [200])})

    export = await post(api_client, org, f"{JOBS}/{job['jobId']}/exports")
    [request] = await receiver.wait_for("/on", 1)
    data = request.json()["data"]
    assert data["exportFileId"] == export["exportFileId"]
    assert data["format"] == "XLSX" and data["rowCount"] == 3
    assert verifies(request, on["signingSecret"])
    link = urlsplit(data["downloadUrl"])
    file = await api_client.get(f"{link.path}?{link.query}")
    assert file.status_code == 200 and len(file.content) == data["fileSize"]
    assert file.content[:2] == b"PK"  # an XLSX is a zip

    await wait_for_delivery(db_pool, on["id"], "SUCCEEDED")
    assert receiver.on("/off") == [] and receiver.on("/foreign") == []
    # the inactive one keeps it PARKED (sent once re-activated and recovered), never POSTed
    assert [d["status"] for d in await deliveries_to(db_pool, off["id"])] == ["PARKED"]
    assert await deliveries_to(db_pool, foreign["id"]) == []
