"""Endpoints that vanish or keep failing, with real receivers on the whole platform (api,
dispatcher, sender as subprocesses): a 410 disables at once, persistent failure disables as
FAILING, an INACTIVE endpoint's events are PARKED (never attempted, not counted toward
backpressure), and a recover re-sends them, each once, with its original eventId; per-job
webhooks' DEAD deliveries too (their job's recover route, `hookpost recover <job id>`).

The rules: libs/domain/endpoint_health.py; the recover: services/api/deliveries/recovery.py.
Retry tiers scaled by 0.002 (a webhook is DEAD in about 5 s); FAILING after 1 s and two DEAD
deliveries in a row; backpressure at 3 PENDING deliveries per org.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from harness.process import HOOKPOST_BIN
from harness.receiver import Receiver
from harness.receiver.behaviours import Ok
from harness.waiting import eventually
from tests.support.factories import REPORT_JOB_REQUEST
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

BACKPRESSURE_LIMIT = 3
ENV = {
    "HOOKPOST_RETRY_DELAY_SCALE": "0.002",
    "HOOKPOST_ENDPOINT_FAILING_AFTER_S": "1",
    "HOOKPOST_ENDPOINT_FAILING_MIN_DEAD": "2",
    "HOOKPOST_BACKPRESSURE_PENDING_LIMIT": str(BACKPRESSURE_LIMIT),
    # endpoint.disabled leaves through the outbox: relayed within half a second here
    "HOOKPOST_OUTBOX_RELAY_INTERVAL_S": "0.2",
    "HOOKPOST_OUTBOX_RELAY_GRACE_S": "0.3",
}
SUBSCRIPTIONS = "/api/v1/webhook-subscriptions"
DESTINATIONS = "/api/v1/delivery-destinations"
MAPPING_JOBS = "/api/v1/mapping-jobs"
REPORT_JOBS = "/api/v1/reports/jobs"
REPORT_JOB = REPORT_JOB_REQUEST


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async with Pipeline(test_env, "health", **ENV) as pipe:
        await pipe.stack.start(api=True, dispatchers=1, senders=1)
        yield pipe


@pytest.fixture
async def api(platform: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.stack.api_url, timeout=10) as client:
        yield client


class Org:
    """One organization's calls to the api."""

    def __init__(self, api: httpx.AsyncClient, token: str) -> None:
        self.api = api
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = await self.api.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    async def subscribe(self, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        body = {"name": "health", "webhookUrl": url, "events": events, **fields}
        return await self.call("POST", SUBSCRIPTIONS, 201, json=body)

    async def destination(self, url: str, events: list[str]) -> dict[str, Any]:
        body = {"type": "WEBHOOK", "webhookUrl": url, "events": events}
        return await self.call("POST", DESTINATIONS, 201, json=body)

    async def send_event(self) -> str:
        data = {"mappingJobId": "job_1", "status": "COMPLETED", "rowCount": 1}
        body = {"type": "mapping.completed", "data": data}
        answer = await self.call("POST", "/api/v1/events", 202, json=body)
        return str(answer["eventId"])

    async def deliveries(self, door: str, endpoint_id: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", f"{door}/{endpoint_id}/deliveries", 200)
        return list(answer["deliveries"])

    async def recover(self, door: str, endpoint_id: str, since: datetime, expect: int = 202) -> Any:
        body = {"since": since.isoformat()}
        return await self.call("POST", f"{door}/{endpoint_id}/recover", expect, json=body)


@pytest.fixture
async def org(make_org, api: httpx.AsyncClient) -> Org:
    created = await make_org()
    return Org(api, created.apiToken)


async def test_a_410_disables_the_endpoint_at_once_and_tells_the_others(
    org: Org, receiver: Receiver
) -> None:
    # It hears endpoint.disabled too, but not of itself (not even PARKED): one delivery.
    gone = await org.subscribe(
        receiver.script("/gone", [410]), ["MAPPING_COMPLETED", "ENDPOINT_DISABLED"]
    )
    await org.subscribe(receiver.behave("/watcher", Ok()), ["ENDPOINT_DISABLED"])
    event_id = await org.send_event()

    [notice] = await receiver.wait_for("/watcher", 1, timeout=30)
    body = notice.json()
    assert body["type"] == "endpoint.disabled"
    assert body["data"]["endpointId"] == gone["id"]
    assert body["data"]["reason"] == "ENDPOINT_GONE"
    assert body["data"]["httpStatus"] == 410
    assert body["data"]["endpointKind"] == "SUBSCRIPTION"

    shown = await org.call("GET", f"{SUBSCRIPTIONS}/{gone['id']}", 200)
    assert (shown["status"], shown["deactivatedReason"]) == ("INACTIVE", "ENDPOINT_GONE")
    # The 410'd delivery ends PARKED, not retried: one request, nothing left to come.
    [delivery] = await org.deliveries(SUBSCRIPTIONS, gone["id"])
    assert (delivery["eventId"], delivery["status"]) == (event_id, "PARKED")
    assert [a["httpStatus"] for a in delivery["attempts"]] == [410]
    assert delivery["nextAttemptAt"] is None
    assert len(receiver.on("/gone")) == 1
    audit = await org.call("GET", "/api/v1/audit-log", 200)
    [entry] = [e for e in audit["entries"] if e["action"] == "endpoint.disabled"]
    assert entry["details"]["endpointId"] == gone["id"]
    assert entry["details"]["reason"] == "ENDPOINT_GONE"


async def test_an_endpoint_failing_long_enough_is_disabled_then_recovered(
    org: Org, receiver: Receiver
) -> None:
    """Two DEAD deliveries in a row, every attempt failed for over 1 s: FAILING. Once the
    user re-activates it, a recover re-sends both DEAD deliveries to the mended receiver."""
    since = datetime.now(UTC)
    failing = await org.destination(
        receiver.script("/failing", [500] * 8 + [200]), ["mapping.completed"]
    )
    await org.destination(receiver.behave("/failing-watcher", Ok()), ["endpoint.disabled"])
    first = await org.send_event()
    await eventually(
        lambda: org.deliveries(DESTINATIONS, failing["id"]),
        lambda found: [d["status"] for d in found] == ["DEAD"],
        timeout=30,
    )
    shown = await org.call("GET", f"{DESTINATIONS}/{failing['id']}", 200)
    assert shown["status"] == "ACTIVE"  # one DEAD delivery is not enough
    second = await org.send_event()

    [notice] = await receiver.wait_for("/failing-watcher", 1, timeout=30)
    assert notice.json()["data"]["reason"] == "FAILING"
    assert notice.json()["data"]["failingSince"] is not None
    shown = await org.call("GET", f"{DESTINATIONS}/{failing['id']}", 200)
    assert (shown["status"], shown["deactivatedReason"]) == ("INACTIVE", "FAILING")
    assert len(receiver.on("/failing")) == 8  # 4 attempts each

    refused = await org.recover(DESTINATIONS, failing["id"], since, expect=409)
    assert refused["error"]["code"] == "CONFLICT"
    body = {
        "type": "WEBHOOK",
        "webhookUrl": receiver.url("/failing"),
        "events": ["mapping.completed"],
    }
    reactivated = await org.call("PUT", f"{DESTINATIONS}/{failing['id']}", 200, json=body)
    assert (reactivated["status"], reactivated["deactivatedReason"]) == ("ACTIVE", None)
    assert await org.recover(DESTINATIONS, failing["id"], since) == {"deliveries": 2}
    resent = (await receiver.wait_for("/failing", 10, timeout=30))[8:]
    assert sorted(r.json()["eventId"] for r in resent) == sorted([first, second])


async def test_events_for_an_inactive_endpoint_are_parked_and_not_counted(
    org: Org, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    """More PARKED deliveries than the backpressure limit: the org's events still flow (a
    bystander gets every one), and the inactive endpoint gets no request."""
    parked = await org.subscribe(receiver.behave("/parked", Ok()), ["MAPPING_COMPLETED"])
    body = {"webhookUrl": receiver.url("/parked"), "events": ["MAPPING_COMPLETED"]}
    await org.call(
        "PUT", f"{SUBSCRIPTIONS}/{parked['id']}", 200, json={**body, "status": "INACTIVE"}
    )
    await org.subscribe(receiver.behave("/bystander", Ok()), ["MAPPING_COMPLETED"])
    sent = []
    for n in range(1, BACKPRESSURE_LIMIT + 3):
        sent.append(await org.send_event())
        # dispatched: the same statement stored the parked endpoint's delivery
        await receiver.wait_for("/bystander", n, timeout=30)

    found = await org.deliveries(SUBSCRIPTIONS, parked["id"])
    assert sorted(d["eventId"] for d in found) == sorted(sent)
    assert {d["status"] for d in found} == {"PARKED"}
    assert all(d["attemptCount"] == 0 and d["nextAttemptAt"] is None for d in found)
    assert receiver.on("/parked") == []
    pending = await db_pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND status = 'PENDING'",
        parked["id"],
    )
    assert pending == 0


async def test_recover_since_t_delivers_each_once_with_its_event_id(
    org: Org, receiver: Receiver
) -> None:
    start = datetime.now(UTC)
    endpoint = await org.subscribe(receiver.script("/recover", [410, 200]), ["MAPPING_COMPLETED"])
    await org.subscribe(receiver.behave("/recover-bystander", Ok()), ["MAPPING_COMPLETED"])
    first = await org.send_event()
    await receiver.wait_for("/recover", 1, timeout=30)
    await eventually(
        lambda: org.deliveries(SUBSCRIPTIONS, endpoint["id"]),
        lambda found: [d["status"] for d in found] == ["PARKED"],
    )
    middle = datetime.now(UTC)
    later = [await org.send_event(), await org.send_event()]
    await receiver.wait_for("/recover-bystander", 3, timeout=30)

    body = {"webhookUrl": receiver.url("/recover"), "events": ["MAPPING_COMPLETED"]}
    await org.call("PUT", f"{SUBSCRIPTIONS}/{endpoint['id']}", 200, json=body)
    assert await org.recover(SUBSCRIPTIONS, endpoint["id"], middle) == {"deliveries": 2}
    # Those two are PENDING (or delivered) now: only the first is left since `start`.
    assert await org.recover(SUBSCRIPTIONS, endpoint["id"], start) == {"deliveries": 1}
    assert await org.recover(SUBSCRIPTIONS, endpoint["id"], start) == {"deliveries": 0}

    await eventually(
        lambda: org.deliveries(SUBSCRIPTIONS, endpoint["id"]),
        lambda found: sorted(d["status"] for d in found) == ["SUCCEEDED"] * 3,
        timeout=30,
    )
    requests = receiver.on("/recover")
    assert len(requests) == 4  # the 410, then each event once
    assert sorted(r.json()["eventId"] for r in requests[1:]) == sorted([first, *later])


async def test_recover_answers_in_the_error_shape(org: Org, receiver: Receiver) -> None:
    endpoint = await org.subscribe(receiver.behave("/shape", Ok()), ["MAPPING_COMPLETED"])
    path = f"{SUBSCRIPTIONS}/{endpoint['id']}/recover"
    naive = await org.call("POST", path, 400, json={"since": "2026-12-01T00:00:00"})
    assert naive["error"]["code"] == "BAD_REQUEST"
    await org.call("POST", path, 400, json={})
    missing = f"{DESTINATIONS}/{endpoint['id']}/recover"  # another door's endpoint
    await org.call("POST", missing, 404, json={"since": "2026-12-01T00:00:00Z"})


async def statuses_of(db_pool: asyncpg.Pool, endpoint_id: str) -> list[str]:
    """A job webhook's deliveries' statuses (it has no GET …/deliveries of its own)."""
    rows = await db_pool.fetch("SELECT status FROM deliveries WHERE endpoint_id = $1", endpoint_id)
    return [r["status"] for r in rows]


async def test_job_webhooks_dead_deliveries_are_recovered_once_with_their_event_ids(
    org: Org, receiver: Receiver, platform: Pipeline, db_pool: asyncpg.Pool
) -> None:
    """A mapping job's webhook and a report job's, each DEAD after its 5 attempts: the
    mapping job's recover route and `hookpost recover <report job id>` re-send each once,
    with the event id the receiver saw on every attempt before."""
    since = datetime.now(UTC)
    failing = [500] * 5 + [200]
    mapping = await org.call(
        "POST", MAPPING_JOBS, 201, json={"webhook": {"url": receiver.script("/job", failing)}}
    )
    report_body = {**REPORT_JOB, "webhook": {"url": receiver.script("/report", failing)}}
    report = await org.call("POST", REPORT_JOBS, 202, json=report_body)
    mapping_hook = mapping["webhook"]["id"]
    report_hook = await db_pool.fetchval(
        "SELECT webhook_endpoint_id FROM report_jobs WHERE id = $1", report["jobId"]
    )
    await org.call("POST", f"{MAPPING_JOBS}/{mapping['jobId']}/complete", 200, json={})
    error = {"error": {"code": "source_unreachable", "message": "no"}}
    await org.call("POST", f"{REPORT_JOBS}/{report['jobId']}/fail", 200, json=error)
    for hook in (mapping_hook, report_hook):
        await eventually(lambda h=hook: statuses_of(db_pool, h), lambda s: s == ["DEAD"], 30)
    [mapping_event] = {r.json()["eventId"] for r in receiver.on("/job")}
    [report_event] = {r.json()["id"] for r in receiver.on("/report")}

    recover = f"{MAPPING_JOBS}/{mapping['jobId']}/webhook/recover"
    body = {"since": since.isoformat()}
    assert await org.call("POST", recover, 202, json=body) == {"deliveries": 1}
    assert await org.call("POST", recover, 202, json=body) == {"deliveries": 0}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(HOOKPOST_BIN), "recover", report["jobId"], "--since", since.isoformat()],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"deliveries": 1}

    for hook in (mapping_hook, report_hook):
        await eventually(lambda h=hook: statuses_of(db_pool, h), lambda s: s == ["SUCCEEDED"], 30)
    # SUCCEEDED: nothing more can come. Five failures, then each event once more, the same.
    assert [r.json()["eventId"] for r in receiver.on("/job")] == [mapping_event] * 6
    assert [r.json()["id"] for r in receiver.on("/report")] == [report_event] * 6
