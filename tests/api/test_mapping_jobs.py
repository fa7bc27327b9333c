"""Mapping jobs (seed 004) through the API on the real database and broker: create, read,
complete, fail, their 404s and 409s, the job webhook's endpoint row, and the outbox events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from libs.domain.ids import IdPrefix, new_id
from libs.infra.crypto import decrypt
from libs.infra.settings import Settings
from tests.api.conftest import Client, assert_error, fill_subscription_quota, wait_until

JOBS = "/api/v1/mapping-jobs"
TOKEN_URL = "http://127.0.0.1:9/jobs/hook?token=job-s3cret-token&team=ops"


async def make_agent(pool: asyncpg.Pool, org_id: str) -> str:
    """An agent row (the agents API is another front door's): what a job may name."""
    agent_id = new_id(IdPrefix.AGENT)
    await pool.execute(
        "INSERT INTO agents (id, organization_id, name, workspace_id) VALUES ($1, $2, $3, $4)",
        agent_id,
        org_id,
        "mapper",
        new_id(IdPrefix.WORKSPACE),
    )
    return agent_id


async def create_job(client: Client, **body: object) -> dict:
    response = await client.post(JOBS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def events_of(pool: asyncpg.Pool, org_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT type, data, published_at FROM events WHERE organization_id = $1"
        " ORDER BY created_at, type",
        org_id,
    )


async def test_create_and_get_a_job_without_a_webhook(client: Client) -> None:
    job = await create_job(client)
    assert job["jobId"].startswith("job_")
    assert job["status"] == "RUNNING"
    assert job["webhook"] is None and job["agentId"] is None
    assert job["stats"] is None and job["error"] is None and job["completedAt"] is None
    fetched = await client.get(f"{JOBS}/{job['jobId']}")
    assert fetched.status_code == 200
    assert fetched.json() == job


async def test_webhook_url_becomes_a_masked_encrypted_job_webhook(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    job = await create_job(client, webhook={"url": TOKEN_URL})
    webhook = job["webhook"]
    assert webhook["id"].startswith("jwh_")
    assert webhook["url"] == "http://127.0.0.1:9/jobs/hook?token=••••&team=••••"
    fetched = (await client.get(f"{JOBS}/{job['jobId']}")).text
    assert "s3cret" not in fetched and "s3cret" not in str(job)

    row = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", webhook["id"])
    assert row["kind"] == "JOB_WEBHOOK"
    assert row["mapping_job_id"] == job["jobId"]
    assert row["organization_id"] == client.org_id
    assert row["events"] == ["mapping.completed", "mapping.failed"]
    assert row["secret_enc"] is None  # the org webhook secret signs it
    assert b"s3cret" not in row["url_enc"]
    assert decrypt(row["url_enc"]) == TOKEN_URL
    assert "s3cret" not in row["url_masked"]


async def test_job_webhooks_are_no_subscriptions_and_not_in_the_quota(
    client: Client, settings: Settings
) -> None:
    await fill_subscription_quota(client, settings)
    job = await create_job(client, webhook={"url": "http://127.0.0.1:9/job"})
    assert job["webhook"] is not None
    listed = (await client.get("/api/v1/webhook-subscriptions")).json()["subscriptions"]
    assert job["webhook"]["id"] not in {s["id"] for s in listed}


@pytest.mark.parametrize(
    "url",
    ["http://93.184.216.34/hook", "https://127.0.0.1/hook", "https://169.254.169.254/x"],
)
async def test_webhook_url_safety_is_checked_like_every_door(
    prod_client: Client, db_pool: asyncpg.Pool, url: str
) -> None:
    error = assert_error(
        await prod_client.post(JOBS, json={"webhook": {"url": url}}), 400, "BAD_REQUEST"
    )
    assert "webhook URL" in error["message"]
    # Nothing was created: no job without the webhook the caller asked for.
    count = await db_pool.fetchval(
        "SELECT count(*) FROM mapping_jobs WHERE organization_id = $1", prod_client.org_id
    )
    assert count == 0


@pytest.mark.parametrize(
    "body",
    [{"webhook": {}}, {"webhook": {"url": 5}}, {"agentId": ["x"]}, {"webhook": "http://x"}],
)
async def test_malformed_create_bodies_are_400(client: Client, body: dict) -> None:
    assert_error(await client.post(JOBS, json=body), 400, "BAD_REQUEST")


async def test_agent_must_be_one_of_the_orgs_agents(
    client: Client, make_client: Callable, db_pool: asyncpg.Pool
) -> None:
    mine = await make_agent(db_pool, client.org_id)
    job = await create_job(client, agentId=mine)
    assert job["agentId"] == mine

    other = await make_client()
    theirs = await make_agent(db_pool, other.org_id)
    assert_error(await client.post(JOBS, json={"agentId": theirs}), 404, "NOT_FOUND")
    assert_error(await client.post(JOBS, json={"agentId": "agt_nope"}), 404, "NOT_FOUND")


async def test_another_orgs_job_is_not_found(client: Client, make_client: Callable) -> None:
    other = await make_client()
    job = await create_job(other, webhook={"url": "http://127.0.0.1:9/other"})
    job_id = job["jobId"]
    assert_error(await client.get(f"{JOBS}/{job_id}"), 404, "NOT_FOUND")
    stats = {"total": 1, "matched": 1, "unmatched": 0}
    complete = await client.post(f"{JOBS}/{job_id}/complete", json={"stats": stats})
    assert_error(complete, 404, "NOT_FOUND")
    fail = {"error": {"code": "x", "message": "y"}}
    assert_error(await client.post(f"{JOBS}/{job_id}/fail", json=fail), 404, "NOT_FOUND")
    assert_error(await client.post(f"{JOBS}/{job_id}/exports"), 404, "NOT_FOUND")
    assert_error(await client.get(f"{JOBS}/job_unknown"), 404, "NOT_FOUND")
    # ...and the other org's job is untouched.
    assert (await other.get(f"{JOBS}/{job_id}")).json()["status"] == "RUNNING"


async def test_complete_moves_the_job_once_and_writes_mapping_completed(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    agent = await make_agent(db_pool, client.org_id)
    job = await create_job(client, agentId=agent)
    stats = {"total": 3, "matched": 2, "unmatched": 1}
    results = [{"sku": "A"}, {"sku": "B"}, {"sku": "C", "match": None}]
    response = await client.post(
        f"{JOBS}/{job['jobId']}/complete", json={"stats": stats, "results": results}
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED" and done["stats"] == stats
    assert done["completedAt"] is not None and done["exportFileId"] is None

    [event] = await events_of(db_pool, client.org_id)
    assert event["type"] == "mapping.completed"
    data = event["data"]
    assert data["mappingJobId"] == job["jobId"]
    assert data["status"] == "COMPLETED"
    assert data["rowCount"] == 3 and data["stats"] == stats and data["agentId"] == agent
    assert data["exportFileId"] is None and data["completedAt"]

    async def published() -> bool:
        return all(e["published_at"] for e in await events_of(db_pool, client.org_id))

    await wait_until(published)
    stored = await db_pool.fetchval("SELECT results FROM mapping_jobs WHERE id = $1", job["jobId"])
    assert stored == results

    again = await client.post(f"{JOBS}/{job['jobId']}/complete", json={"stats": stats})
    assert assert_error(again, 409, "CONFLICT")["status"] == "COMPLETED"
    fail = {"error": {"code": "late", "message": "too late"}}
    assert_error(await client.post(f"{JOBS}/{job['jobId']}/fail", json=fail), 409, "CONFLICT")
    assert len(await events_of(db_pool, client.org_id)) == 1  # no event for refused moves


async def test_row_count_without_stats_is_the_number_of_results(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    job = await create_job(client)
    response = await client.post(
        f"{JOBS}/{job['jobId']}/complete", json={"results": [{"a": 1}, {"a": 2}]}
    )
    assert response.status_code == 200, response.text
    [event] = await events_of(db_pool, client.org_id)
    assert event["data"]["rowCount"] == 2 and event["data"]["stats"] is None


async def test_fail_moves_the_job_once_and_writes_mapping_failed(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    job = await create_job(client)
    error = {"code": "target_not_found", "message": "Could not identify the target"}
    response = await client.post(f"{JOBS}/{job['jobId']}/fail", json={"error": error})
    assert response.status_code == 200, response.text
    failed = response.json()
    assert failed["status"] == "FAILED" and failed["error"] == error
    assert failed["failedAt"] is not None

    [event] = await events_of(db_pool, client.org_id)
    assert event["type"] == "mapping.failed"
    assert event["data"]["mappingJobId"] == job["jobId"]
    assert event["data"]["status"] == "FAILED" and event["data"]["error"] == error

    stats = {"total": 0, "matched": 0, "unmatched": 0}
    conflict = await client.post(f"{JOBS}/{job['jobId']}/complete", json={"stats": stats})
    assert assert_error(conflict, 409, "CONFLICT")["status"] == "FAILED"
    assert_error(
        await client.post(f"{JOBS}/{job['jobId']}/fail", json={"error": error}), 409, "CONFLICT"
    )
    assert_error(await client.post(f"{JOBS}/{job['jobId']}/exports"), 409, "CONFLICT")


@pytest.mark.parametrize(
    "body",
    [
        {"stats": {"total": -1, "matched": 0, "unmatched": 0}},
        {"stats": {"total": 1}},
        {"results": [1, 2]},
        {"results": {"a": 1}},
        {"results": [{"bad": "nul\u0000"}]},
    ],
)
async def test_malformed_complete_bodies_are_400_and_leave_the_job_running(
    client: Client, body: dict
) -> None:
    job = await create_job(client)
    assert_error(
        await client.post(f"{JOBS}/{job['jobId']}/complete", json=body), 400, "BAD_REQUEST"
    )
    assert (await client.get(f"{JOBS}/{job['jobId']}")).json()["status"] == "RUNNING"


@pytest.mark.parametrize(
    "body", [{}, {"error": {"code": "", "message": "m"}}, {"error": {"message": "m"}}]
)
async def test_malformed_fail_bodies_are_400(client: Client, body: dict) -> None:
    job = await create_job(client)
    assert_error(await client.post(f"{JOBS}/{job['jobId']}/fail", json=body), 400, "BAD_REQUEST")


async def test_unauthenticated_is_401(client: Client) -> None:
    response = await client.http.post(JOBS, json={})
    assert_error(response, 401, "UNAUTHORIZED")


async def test_concurrent_moves_of_one_job_let_exactly_one_win(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    job = await create_job(client)
    stats = {"total": 1, "matched": 1, "unmatched": 0}
    fail = {"error": {"code": "boom", "message": "m"}}
    calls = []
    for n in range(6):
        if n % 2:
            calls.append(client.post(f"{JOBS}/{job['jobId']}/fail", json=fail))
        else:
            calls.append(client.post(f"{JOBS}/{job['jobId']}/complete", json={"stats": stats}))
    responses = await asyncio.gather(*calls)
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409, 409]
    events = await events_of(db_pool, client.org_id)
    assert len(events) == 1  # one move, one event
    final = (await client.get(f"{JOBS}/{job['jobId']}")).json()["status"]
    assert (
        events[0]["type"] == {"COMPLETED": "mapping.completed", "FAILED": "mapping.failed"}[final]
    )


async def test_mapping_failed_names_the_agent(client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await make_agent(db_pool, client.org_id)
    job = await create_job(client, agentId=agent)
    fail = {"error": {"code": "x", "message": "y"}}
    assert (await client.post(f"{JOBS}/{job['jobId']}/fail", json=fail)).status_code == 200
    [event] = await events_of(db_pool, client.org_id)
    assert event["data"]["agentId"] == agent
