"""Door F (seed 004, Mappa report jobs) through the in-process api on the real servers: the
page's shapes, the producer calls (a second outcome is a 409), validation in the §4 shape,
tenancy, URL safety, and the outcome event addressed to the job's own webhook only."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from libs.infra.crypto import decrypt
from tests.api.conftest import Client, assert_error
from tests.support.factories import REPORT_JOB_REQUEST

JOBS = "/api/v1/reports/jobs"
BODY = REPORT_JOB_REQUEST


def with_webhook(url: str = "http://127.0.0.1:9/webhooks/mappa") -> dict:
    return {**BODY, "webhook": {"url": url}}


async def create(client: Client, body: dict | None = None) -> str:
    response = await client.post(JOBS, json=body or BODY)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert set(response.json()) == {"jobId", "status"}
    return str(response.json()["jobId"])


async def test_create_then_complete_then_read_the_report(client: Client) -> None:
    job_id = await create(client, with_webhook())
    job = (await client.get(f"{JOBS}/{job_id}")).json()
    assert job["jobId"] == job_id and job["status"] == "queued" and job["reportId"] is None

    report = {"markdown": "# Sales playbook\n\nAsk more questions.", "title": "Playbook"}
    done = await client.post(f"{JOBS}/{job_id}/complete", json={"report": report})
    assert done.status_code == 200, done.text
    report_id = done.json()["reportId"]
    assert done.json() == {"jobId": job_id, "reportId": report_id}

    job = (await client.get(f"{JOBS}/{job_id}")).json()
    assert job["status"] == "completed" and job["reportId"] == report_id
    got = (await client.get(f"/api/v1/reports/{report_id}")).json()
    assert got["id"] == report_id and got["jobId"] == job_id
    assert got["markdown"] == report["markdown"] and got["title"] == "Playbook"
    assert got["createdAt"]


async def test_a_second_outcome_is_a_409(client: Client) -> None:
    job_id = await create(client)
    report = {"report": {"markdown": "x"}}
    assert (await client.post(f"{JOBS}/{job_id}/complete", json=report)).status_code == 200
    assert_error(await client.post(f"{JOBS}/{job_id}/complete", json=report), 409, "CONFLICT")
    error = {"error": {"code": "target_not_found", "message": "no"}}
    assert_error(await client.post(f"{JOBS}/{job_id}/fail", json=error), 409, "CONFLICT")

    failed_id = await create(client)
    failed = await client.post(f"{JOBS}/{failed_id}/fail", json=error)
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed" and failed.json()["error"] == error["error"]
    assert_error(await client.post(f"{JOBS}/{failed_id}/fail", json=error), 409, "CONFLICT")
    assert_error(await client.post(f"{JOBS}/{failed_id}/complete", json=report), 409, "CONFLICT")


async def test_bad_bodies_are_400_in_the_error_shape(client: Client) -> None:
    for body in (
        {},
        {**BODY, "url": "not a url"},
        {**BODY, "url": "ftp://example.com/a.mp3"},
        {**BODY, "output": {}},
        {**BODY, "target": {"strategy": ""}},
        {**BODY, "webhook": {"url": "ftp://x/"}},
        {**BODY, "webhook": {}},
        [1, 2],
    ):
        assert_error(await client.post(JOBS, json=body), 400, "BAD_REQUEST")
    assert_error(await client.post(JOBS, content=b"url=x"), 400, "BAD_REQUEST")
    job_id = await create(client)
    for bad in ({}, {"report": {}}, {"report": {"markdown": 3}}):
        assert_error(await client.post(f"{JOBS}/{job_id}/complete", json=bad), 400, "BAD_REQUEST")
    for bad in ({}, {"error": {"message": "m"}}, {"error": {"code": "", "message": "m"}}):
        assert_error(await client.post(f"{JOBS}/{job_id}/fail", json=bad), 400, "BAD_REQUEST")


async def test_another_orgs_job_and_report_are_404(client: Client, make_client: Callable) -> None:
    job_id = await create(client)
    report_id = (
        await client.post(f"{JOBS}/{job_id}/complete", json={"report": {"markdown": "m"}})
    ).json()["reportId"]
    other = await make_client()
    assert_error(await other.get(f"{JOBS}/{job_id}"), 404, "NOT_FOUND")
    assert_error(await other.get(f"/api/v1/reports/{report_id}"), 404, "NOT_FOUND")
    fresh = await create(client)
    done = {"report": {"markdown": "m"}}
    assert_error(await other.post(f"{JOBS}/{fresh}/complete", json=done), 404, "NOT_FOUND")
    assert (await client.get(f"{JOBS}/{fresh}")).json()["status"] == "queued"
    assert_error(await client.get(f"{JOBS}/rjob_missing"), 404, "NOT_FOUND")


async def test_unauthenticated_is_401(client: Client) -> None:
    assert_error(await client.http.post(JOBS, json=BODY), 401, "UNAUTHORIZED")
    assert_error(await client.http.get(f"{JOBS}/x"), 401, "UNAUTHORIZED")
    assert_error(await client.http.get("/api/v1/reports/x"), 401, "UNAUTHORIZED")


async def test_webhook_url_safety_outside_dev(prod_client: Client) -> None:
    for url in ("http://example.com/h", "https://127.0.0.1/h", "https://10.0.0.1/h"):
        assert_error(await prod_client.post(JOBS, json=with_webhook(url)), 400, "BAD_REQUEST")


async def test_the_outcome_event_names_the_jobs_webhook_alone(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    """The event is addressed to the job's own REPORT_WEBHOOK endpoint, which subscribes to
    nothing; a job without a webhook records no event. The media URL is stored encrypted."""
    job_id = await create(client, with_webhook("http://127.0.0.1:9/hook?token=s3cret"))
    row = await db_pool.fetchrow(
        "SELECT j.webhook_endpoint_id, j.source_url_enc, e.kind, e.events, e.signature_scheme,"
        " e.secret_enc, e.url_masked FROM report_jobs j JOIN endpoints e"
        " ON e.id = j.webhook_endpoint_id WHERE j.id = $1",
        job_id,
    )
    assert row["kind"] == "REPORT_WEBHOOK" and row["events"] == []
    assert row["signature_scheme"] == "mappa" and row["secret_enc"] is None
    assert "s3cret" not in row["url_masked"]
    assert decrypt(row["source_url_enc"]) == BODY["url"]
    await client.post(f"{JOBS}/{job_id}/fail", json={"error": {"code": "c", "message": "m"}})
    events = await db_pool.fetch(
        "SELECT type, data, target_endpoint_id, ordering_key FROM events"
        " WHERE organization_id = $1",
        client.org_id,
    )
    assert [(e["type"], e["target_endpoint_id"], e["ordering_key"]) for e in events] == [
        ("report.failed", row["webhook_endpoint_id"], job_id)  # a job's events: its id as key
    ]
    assert events[0]["data"] == {
        "jobId": job_id,
        "status": "failed",
        "error": {"code": "c", "message": "m"},
    }
    bare = await create(client)
    await client.post(f"{JOBS}/{bare}/complete", json={"report": {"markdown": "m"}})
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", client.org_id
    )
    assert count == 1


async def test_report_events_cannot_be_ingested_or_subscribed(client: Client) -> None:
    response = await client.post("/api/v1/events", json={"type": "report.completed", "data": {}})
    assert_error(response, 400, "BAD_REQUEST")
    body = {"type": "WEBHOOK", "webhookUrl": "http://127.0.0.1:9/", "events": ["report.failed"]}
    assert_error(await client.post("/api/v1/delivery-destinations", json=body), 400, "BAD_REQUEST")
