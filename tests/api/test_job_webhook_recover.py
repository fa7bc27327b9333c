"""Recover since T for per-job webhooks (mapping jobs and report jobs) through the in-process
api and `hookpost recover` on the real database and broker: what is re-sent (each once, its
original event), the 404s (unknown job, no webhook, another org's), bad `since` as a 400,
an INACTIVE webhook as a 409. With real receivers: tests/pipeline/test_endpoint_health.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from harness.process import HOOKPOST_BIN
from libs.infra.broker.topology import SEND_ROUTING_KEY
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import Client, MakeClient, assert_error, insert_delivery
from tests.support.factories import REPORT_JOB_REQUEST

HOOK_URL = "http://127.0.0.1:9/webhooks/job"


@dataclass(frozen=True)
class JobDoor:
    """One kind of job whose webhook is recovered: where jobs are made, and their body."""

    name: str
    jobs: str  # the collection its jobs are created in and named under
    created: int  # the create's status
    body: dict[str, Any]
    webhook_sql: str  # the job's webhook id, by job id

    async def create(self, client: Client, webhook: bool = True) -> str:
        body = {**self.body, **({"webhook": {"url": HOOK_URL}} if webhook else {})}
        response = await client.post(self.jobs, json=body)
        assert response.status_code == self.created, response.text
        return str(response.json()["jobId"])

    def recover_path(self, job_id: str) -> str:
        return f"{self.jobs}/{job_id}/webhook/recover"


MAPPING = JobDoor(
    "mapping",
    "/api/v1/mapping-jobs",
    201,
    {},
    "SELECT id FROM endpoints WHERE mapping_job_id = $1 AND kind = 'JOB_WEBHOOK'",
)
REPORT = JobDoor(
    "report",
    "/api/v1/reports/jobs",
    202,
    REPORT_JOB_REQUEST,
    "SELECT webhook_endpoint_id FROM report_jobs WHERE id = $1",
)
DOORS = pytest.mark.parametrize("door", [MAPPING, REPORT], ids=lambda d: d.name)


def since(delta: timedelta = timedelta(hours=-1)) -> dict[str, str]:
    return {"since": (datetime.now(UTC) + delta).isoformat()}


async def job_with_webhook(client: Client, db_pool: asyncpg.Pool, door: JobDoor) -> tuple[str, str]:
    job_id = await door.create(client)
    webhook_id = await db_pool.fetchval(door.webhook_sql, job_id)
    assert webhook_id is not None
    return job_id, str(webhook_id)


async def statuses(db_pool: asyncpg.Pool, delivery_ids: list[str]) -> list[str]:
    rows = await db_pool.fetch(
        "SELECT id, status FROM deliveries WHERE id = ANY($1::text[])", delivery_ids
    )
    by_id = {r["id"]: r["status"] for r in rows}
    return [by_id[d] for d in delivery_ids]


@DOORS
async def test_recover_resends_the_webhooks_parked_failed_and_dead_deliveries_once(
    door: JobDoor, client: Client, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    job_id, webhook_id = await job_with_webhook(client, db_pool, door)
    _, other_webhook = await job_with_webhook(client, db_pool, door)
    again = {
        status: await insert_delivery(db_pool, client.org_id, webhook_id, status=status)
        for status in ("DEAD", "PARKED", "FAILED")
    }
    _, succeeded = await insert_delivery(db_pool, client.org_id, webhook_id, status="SUCCEEDED")
    _, bystander = await insert_delivery(db_pool, client.org_id, other_webhook, status="DEAD")
    probe = await bind_probe_queue(amqp, topology.deliveries_exchange.name, SEND_ROUTING_KEY)

    # Nothing was created after a time still to come.
    future = await client.post(door.recover_path(job_id), json=since(timedelta(hours=1)))
    assert (future.status_code, future.json()) == (202, {"deliveries": 0})
    response = await client.post(door.recover_path(job_id), json=since())
    assert (response.status_code, response.json()) == (202, {"deliveries": 3})

    for event_id, delivery_id in again.values():
        message = await next_message(probe, lambda m, d=delivery_id: m.message_id == d)
        task = orjson.loads(message.body)
        assert (task["eventId"], task["endpointId"]) == (event_id, webhook_id)
    resent = [delivery_id for _, delivery_id in again.values()]
    assert await statuses(db_pool, resent) == ["PENDING"] * 3
    assert await statuses(db_pool, [succeeded, bystander]) == ["SUCCEEDED", "DEAD"]
    # PENDING now: a second recover re-sends none of them again.
    response = await client.post(door.recover_path(job_id), json=since())
    assert (response.status_code, response.json()) == (202, {"deliveries": 0})

    audit = (await client.get("/api/v1/audit-log")).json()["entries"]
    counts = [e["details"]["deliveries"] for e in audit if e["action"] == "endpoint.recovered"]
    assert sorted(counts) == [0, 0, 3]
    assert {e["details"]["endpointId"] for e in audit if e["action"] == "endpoint.recovered"} == {
        webhook_id
    }


@DOORS
async def test_a_job_without_a_webhook_is_a_404(door: JobDoor, client: Client) -> None:
    job_id = await door.create(client, webhook=False)
    error = assert_error(
        await client.post(door.recover_path(job_id), json=since()), 404, "NOT_FOUND"
    )
    assert "has no webhook" in error["message"]
    unknown = f"{job_id[:-4]}ZZZZ"
    error = assert_error(
        await client.post(door.recover_path(unknown), json=since()), 404, "NOT_FOUND"
    )
    assert "not found" in error["message"]


@DOORS
async def test_another_orgs_job_is_a_404_and_nothing_is_resent(
    door: JobDoor, client: Client, make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    owner = await make_client()
    job_id, webhook_id = await job_with_webhook(owner, db_pool, door)
    _, delivery_id = await insert_delivery(db_pool, owner.org_id, webhook_id, status="DEAD")

    assert_error(await client.post(door.recover_path(job_id), json=since()), 404, "NOT_FOUND")
    assert await statuses(db_pool, [delivery_id]) == ["DEAD"]
    # The same call is the owner's to make: the 404 above was the org's, not the route's.
    response = await owner.post(door.recover_path(job_id), json=since())
    assert (response.status_code, response.json()) == (202, {"deliveries": 1})


@DOORS
@pytest.mark.parametrize(
    "body",
    [
        {"since": "2026-12-01T00:00:00"},  # no offset: which time is it?
        {"since": "yesterday"},
        {"since": None},
        {},
        [],
    ],
    ids=["naive", "not-a-time", "null", "missing", "not-an-object"],
)
async def test_a_bad_since_is_a_400_and_nothing_is_resent(
    door: JobDoor, body: Any, client: Client, db_pool: asyncpg.Pool
) -> None:
    job_id, webhook_id = await job_with_webhook(client, db_pool, door)
    _, delivery_id = await insert_delivery(db_pool, client.org_id, webhook_id, status="DEAD")
    assert_error(await client.post(door.recover_path(job_id), json=body), 400, "BAD_REQUEST")
    assert await statuses(db_pool, [delivery_id]) == ["DEAD"]


@DOORS
@pytest.mark.parametrize("reason", ["ENDPOINT_GONE", "FAILING"])
async def test_recover_reactivates_a_webhook_disabled_by_its_answers(
    door: JobDoor, client: Client, db_pool: asyncpg.Pool, reason: str
) -> None:
    """A job's webhook that answered 410 Gone (or kept failing) is INACTIVE, its deliveries
    PARKED; it has no PUT, so its recover is how the customer says it works again: ACTIVE
    again, audited, and its PARKED delivery re-sent (else parked for good)."""
    job_id, webhook_id = await job_with_webhook(client, db_pool, door)
    _, delivery_id = await insert_delivery(db_pool, client.org_id, webhook_id, status="PARKED")
    await db_pool.execute(
        "UPDATE endpoints SET status = 'INACTIVE', deactivated_reason = $2 WHERE id = $1",
        webhook_id,
        reason,
    )
    response = await client.post(door.recover_path(job_id), json=since())
    assert response.status_code == 202 and response.json() == {"deliveries": 1}
    endpoint = await db_pool.fetchrow(
        "SELECT status, deactivated_reason FROM endpoints WHERE id = $1", webhook_id
    )
    assert (endpoint["status"], endpoint["deactivated_reason"]) == ("ACTIVE", None)
    assert await statuses(db_pool, [delivery_id]) == ["PENDING"]
    audited = await db_pool.fetchval(
        "SELECT details FROM audit_log WHERE organization_id = $1"
        " AND action = 'endpoint.reactivated'",
        client.org_id,
    )
    assert audited == {"endpointId": webhook_id, "deactivatedReason": reason}


@DOORS
async def test_a_webhook_disabled_by_a_plan_downgrade_stays_a_409(
    door: JobDoor, client: Client, db_pool: asyncpg.Pool
) -> None:
    job_id, webhook_id = await job_with_webhook(client, db_pool, door)
    _, delivery_id = await insert_delivery(db_pool, client.org_id, webhook_id, status="DEAD")
    await db_pool.execute(
        "UPDATE endpoints SET status = 'INACTIVE', deactivated_reason = 'PLAN_DOWNGRADE'"
        " WHERE id = $1",
        webhook_id,
    )
    error = assert_error(
        await client.post(door.recover_path(job_id), json=since()), 409, "CONFLICT"
    )
    assert (error["status"], error["deactivatedReason"]) == ("INACTIVE", "PLAN_DOWNGRADE")
    # it has no PUT: the message names the plan, not a re-activation it cannot make
    assert "plan downgrade" in error["message"] and "status ACTIVE" not in error["message"]
    assert await statuses(db_pool, [delivery_id]) == ["DEAD"]


async def hookpost_recover(name: str, when: str) -> subprocess.CompletedProcess[str]:
    """`hookpost recover` as an operator runs it (the test run's database and broker)."""
    return await asyncio.to_thread(
        subprocess.run,
        [str(HOOKPOST_BIN), "recover", name, "--since", when],
        capture_output=True,
        text=True,
        timeout=60,
    )


@DOORS
async def test_operators_recover_a_jobs_webhook_by_the_jobs_id(
    door: JobDoor, client: Client, db_pool: asyncpg.Pool, amqp, topology
) -> None:
    job_id, webhook_id = await job_with_webhook(client, db_pool, door)
    event_id, delivery_id = await insert_delivery(db_pool, client.org_id, webhook_id, status="DEAD")
    probe = await bind_probe_queue(amqp, topology.deliveries_exchange.name, SEND_ROUTING_KEY)

    done = await hookpost_recover(job_id, since()["since"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"deliveries": 1}
    message = await next_message(probe, lambda m: m.message_id == delivery_id)
    assert orjson.loads(message.body)["eventId"] == event_id
    assert await statuses(db_pool, [delivery_id]) == ["PENDING"]

    # The webhook's own id works as every door's endpoint id does; PENDING now: none again.
    done = await hookpost_recover(webhook_id, since()["since"])
    assert (done.returncode, json.loads(done.stdout)) == (0, {"deliveries": 0})


@DOORS
async def test_operators_naming_a_job_without_a_webhook_get_why(
    door: JobDoor, client: Client
) -> None:
    job_id = await door.create(client, webhook=False)
    done = await hookpost_recover(job_id, "2026-12-01T00:00:00Z")
    assert done.returncode == 1
    assert f"{job_id!r} has no webhook" in done.stderr
    done = await hookpost_recover(job_id, "yesterday")
    assert done.returncode == 1 and "RFC 3339" in done.stderr
