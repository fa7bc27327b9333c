"""Agent results sinks (seed 003) through the real api, dispatcher and senders to a real
receiver: the pushed payload and its X-MT-Signature (verified here with hmac, as the seed's
Node snippet does), Bearer and Basic headers, opt-in push, the 4xx rule, retry_failed_push,
syncs, and the signed synthetic /test push."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from libs.domain.ids import IdPrefix, new_id
from libs.sdk.webhooks import (
    WebhookVerificationError,
    parse_sink_payload,
    verify_sink_signature,
)
from tests.e2e.conftest import auth
from tests.sdk.test_docs_snippets import run_node, snippet

AGENTS = "/api/v1/agents"
SINK_KEYS = {"jobId", "agentId", "workspaceId", "completedAt", "stats", "results"}
HMAC_SECRET = "mt_sink_secret_0123456789abcdef0123456789abcdef"
STATS = {"total": 3, "matched": 2, "unmatched": 1}
RESULTS = [
    {
        "partnerRowId": "row_01",
        "referenceHotelId": "ref_01",
        "matchMethod": "STANDARD",
        "matchConfidence": None,
    },
    {
        "partnerRowId": "row_02",
        "referenceHotelId": "ref_02",
        "matchMethod": "FUZZY",
        "matchConfidence": 0.93,
    },
    {
        "partnerRowId": "row_03",
        "referenceHotelId": None,
        "matchMethod": None,
        "matchConfidence": None,
    },
]


def mt_verifies(request: ReceivedRequest, secret: str) -> bool:
    """The seed's Node check, in Python: hex HMAC-SHA256 of the raw body, constant time."""
    given = request.headers["X-MT-Signature"].removeprefix("sha256=")
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return request.headers["X-MT-Signature"].startswith("sha256=") and hmac.compare_digest(
        given, expected
    )


async def make_agent(
    client: httpx.AsyncClient, org: dict[str, str], *, push: bool, retries: int = 2
) -> dict[str, Any]:
    created = await client.post(AGENTS, headers=auth(org), json={"name": "mapper"})
    assert created.status_code == 201, created.text
    agent = created.json()
    rules = {"data_sinks": {"auto_push_on_job_complete": push, "retry_failed_push": retries}}
    put = await client.put(f"{AGENTS}/{agent['id']}/rules", headers=auth(org), json=rules)
    assert put.status_code == 200, put.text
    return agent


async def make_sink(
    client: httpx.AsyncClient,
    org: dict[str, str],
    agent_id: str,
    url: str,
    scheme: str = "HmacSha256",
    secret: str = HMAC_SECRET,
) -> dict[str, Any]:
    body = {
        "role": "RESULTS_SINK",
        "type": "HTTPS_WEBHOOK",
        "name": "Internal BI ingest",
        "config": {"url": url, "authScheme": scheme},
        "secret": {"value": secret},
        "format": "JSON",
    }
    response = await client.post(f"{AGENTS}/{agent_id}/data-sources", headers=auth(org), json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def complete_job(
    db_pool: asyncpg.Pool, client: httpx.AsyncClient, org: dict[str, str], agent_id: str
) -> dict[str, Any]:
    """What the mapping-jobs /complete route does: store the results, emit mapping.completed."""
    job_id = new_id(IdPrefix.MAPPING_JOB)
    completed_at = datetime.now(UTC).replace(microsecond=0)
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id, status, stats, results,"
        " completed_at) VALUES ($1, $2, $3, 'COMPLETED', $4, $5, $6)",
        job_id,
        org["organizationId"],
        agent_id,
        STATS,
        RESULTS,
        completed_at,
    )
    response = await client.post(
        "/api/v1/events",
        headers=auth(org),
        json={
            "type": "mapping.completed",
            "data": {
                "mappingJobId": job_id,
                "status": "COMPLETED",
                "rowCount": 3,
                "agentId": agent_id,
            },
        },
    )
    assert response.status_code == 202, response.text
    return {"jobId": job_id, "completedAt": completed_at, "eventId": response.json()["eventId"]}


async def syncs_until(
    client: httpx.AsyncClient,
    org: dict[str, str],
    agent_id: str,
    ds_id: str,
    done: Any,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    url = f"{AGENTS}/{agent_id}/data-sources/{ds_id}/syncs"
    deadline = time.monotonic() + timeout
    syncs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.get(url, headers=auth(org))
        assert response.status_code == 200, response.text
        syncs = response.json()["syncs"]
        if done(syncs):
            return syncs
        await asyncio.sleep(0.2)
    raise AssertionError(f"syncs did not settle: {syncs}")


def settled(status: str, attempts: int) -> Any:
    return lambda syncs: (
        len(syncs) == attempts and all(s["deliveryStatus"] == status for s in syncs)
    )


async def test_completed_job_is_pushed_with_the_seed_payload_and_x_mt_signature(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=True)
    sink = await make_sink(api_client, org, agent["id"], receiver.script("/bi-ingest", [200]))
    # Another agent of the same org, opted in too: it must not hear this agent's job.
    other = await make_agent(api_client, org, push=True)
    await make_sink(api_client, org, other["id"], receiver.script("/other-agent", [200]))

    job = await complete_job(db_pool, api_client, org, agent["id"])
    [request] = await receiver.wait_for("/bi-ingest", 1)
    payload = request.json()
    assert set(payload) == SINK_KEYS
    assert payload == {
        "jobId": job["jobId"],
        "agentId": agent["id"],
        "workspaceId": agent["workspaceId"],
        "completedAt": job["completedAt"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stats": STATS,
        "results": RESULTS,
    }
    assert mt_verifies(request, HMAC_SECRET)
    assert not mt_verifies(request, HMAC_SECRET + "x")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Webhook-Event"] == "mapping.completed"
    assert "X-Webhook-Signature" not in request.headers and "Authorization" not in request.headers

    [sync] = await syncs_until(api_client, org, agent["id"], sink["id"], settled("SUCCEEDED", 1))
    assert sync["jobId"] == job["jobId"] and sync["status"] == "SUCCEEDED"
    assert sync["attemptNumber"] == 1 and sync["httpStatus"] == 200
    assert sync["attemptId"] == request.headers["X-Webhook-Delivery"] == sync["deliveryId"]
    assert receiver.on("/other-agent") == []


@pytest.mark.parametrize(
    ("scheme", "secret", "expected"),
    [
        ("Bearer", "tok_live_0123456789", "Bearer tok_live_0123456789"),
        (
            "Basic",
            "ingest:p@ss:word",
            "Basic " + base64.b64encode(b"ingest:p@ss:word").decode(),
        ),
    ],
)
async def test_bearer_and_basic_sinks_send_authorization(
    stack: Stack,
    api_client: httpx.AsyncClient,
    receiver: Receiver,
    db_pool: asyncpg.Pool,
    scheme: str,
    secret: str,
    expected: str,
) -> None:
    org = stack.create_org("ENTERPRISE")
    agent = await make_agent(api_client, org, push=True)
    path = f"/auth-{scheme}"
    await make_sink(api_client, org, agent["id"], receiver.script(path, [200]), scheme, secret)
    job = await complete_job(db_pool, api_client, org, agent["id"])
    [request] = await receiver.wait_for(path, 1)
    assert request.headers["Authorization"] == expected
    assert "X-MT-Signature" not in request.headers
    assert request.json()["jobId"] == job["jobId"]


async def test_no_push_unless_opted_in_and_active(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org("PRO_MAX")
    default_agent = await make_agent(api_client, org, push=False)  # the default rules
    off_sink = await make_sink(
        api_client, org, default_agent["id"], receiver.script("/push-off", [200])
    )
    inactive_agent = await make_agent(api_client, org, push=True)
    inactive_sink = await make_sink(
        api_client, org, inactive_agent["id"], receiver.script("/agent-off", [200])
    )
    deactivated = await api_client.patch(
        f"{AGENTS}/{inactive_agent['id']}", headers=auth(org), json={"status": "INACTIVE"}
    )
    assert deactivated.status_code == 200, deactivated.text
    # A control endpoint of the same org hears the same events: when it has them, the
    # dispatcher has dispatched them (one dispatch inserts every delivery of an event).
    control = await api_client.post(
        "/api/v1/delivery-destinations",
        headers=auth(org),
        json={
            "type": "WEBHOOK",
            "webhookUrl": receiver.script("/control", [200]),
            "events": ["mapping.completed"],
        },
    )
    assert control.status_code == 201, control.text

    first = await complete_job(db_pool, api_client, org, default_agent["id"])
    second = await complete_job(db_pool, api_client, org, inactive_agent["id"])
    received = await receiver.wait_for("/control", 2)
    assert {r.json()["data"]["mappingJobId"] for r in received} == {first["jobId"], second["jobId"]}
    assert receiver.on("/push-off") == [] and receiver.on("/agent-off") == []
    count = await db_pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = ANY($1::text[])",
        [off_sink["id"], inactive_sink["id"]],
    )
    assert count == 0


async def test_a_4xx_ends_the_push_failed_after_one_attempt(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=True, retries=3)
    sink = await make_sink(api_client, org, agent["id"], receiver.script("/reject", [422]))
    job = await complete_job(db_pool, api_client, org, agent["id"])
    [sync] = await syncs_until(api_client, org, agent["id"], sink["id"], settled("FAILED", 1))
    assert sync["status"] == "FAILED" and sync["httpStatus"] == 422
    assert sync["jobId"] == job["jobId"]
    assert len(receiver.on("/reject")) == 1


@pytest.mark.parametrize("retries", [2, 0])
async def test_5xx_is_tried_1_plus_retry_failed_push_times_then_dead(
    stack: Stack,
    api_client: httpx.AsyncClient,
    receiver: Receiver,
    db_pool: asyncpg.Pool,
    retries: int,
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=True, retries=retries)
    path = f"/down-{retries}"
    sink = await make_sink(api_client, org, agent["id"], receiver.script(path, [500]))
    job = await complete_job(db_pool, api_client, org, agent["id"])
    attempts = 1 + retries
    syncs = await syncs_until(api_client, org, agent["id"], sink["id"], settled("DEAD", attempts))
    requests = receiver.on(path)
    assert len(requests) == attempts
    assert sorted(s["attemptNumber"] for s in syncs) == list(range(1, attempts + 1))
    assert all(s["status"] == "FAILED" and s["httpStatus"] == 500 for s in syncs)
    assert all(s["jobId"] == job["jobId"] for s in syncs)
    # Every attempt is listed under the X-Webhook-Delivery it was sent with.
    assert {s["attemptId"] for s in syncs} == {r.headers["X-Webhook-Delivery"] for r in requests}
    # Every retry carries the same, correctly signed payload.
    assert all(mt_verifies(r, HMAC_SECRET) and r.body == requests[0].body for r in requests)


async def test_a_retried_push_that_then_succeeds_lists_both_attempts(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=True, retries=1)
    sink = await make_sink(api_client, org, agent["id"], receiver.script("/flaky", [503, 200]))
    await complete_job(db_pool, api_client, org, agent["id"])
    syncs = await syncs_until(api_client, org, agent["id"], sink["id"], settled("SUCCEEDED", 2))
    by_number = {s["attemptNumber"]: s for s in syncs}
    assert by_number[1]["status"] == "FAILED" and by_number[1]["httpStatus"] == 503
    assert by_number[2]["status"] == "SUCCEEDED" and by_number[2]["httpStatus"] == 200


async def test_test_route_pushes_a_signed_synthetic_payload(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=False)  # /test works before opting in
    sink = await make_sink(api_client, org, agent["id"], receiver.script("/sink-test", [200]))
    response = await api_client.post(
        f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}/test", headers=auth(org)
    )
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveryId"]
    [request] = await receiver.wait_for("/sink-test", 1)
    assert mt_verifies(request, HMAC_SECRET)
    assert request.headers["X-Webhook-Event"] == "webhook.test"
    assert request.headers["X-Webhook-Delivery"] == delivery_id
    payload = orjson.loads(request.body)
    assert set(payload) == SINK_KEYS
    assert payload["agentId"] == agent["id"] and payload["workspaceId"] == agent["workspaceId"]
    assert payload["jobId"].startswith("job_") and len(payload["results"]) == 2
    assert set(payload["results"][0]) == set(RESULTS[0])

    [sync] = await syncs_until(api_client, org, agent["id"], sink["id"], settled("SUCCEEDED", 1))
    assert sync["deliveryId"] == delivery_id and sync["eventType"] == "webhook.test"
    assert sync["jobId"] == payload["jobId"]


@pytest.fixture
async def sink_delivery(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> ReceivedRequest:
    """A real, signed /test push to an HmacSha256 sink."""
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=False)
    sink = await make_sink(api_client, org, agent["id"], receiver.script("/doc-sink", [200]))
    response = await api_client.post(
        f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}/test", headers=auth(org)
    )
    assert response.status_code == 202, response.text
    [request] = await receiver.wait_for("/doc-sink", 1)
    return request


def sink_cases(request: ReceivedRequest) -> list[tuple[bytes, str, bool]]:
    """(body, secret, should verify): the real push, a wrong secret, a tampered body."""
    return [
        (request.body, HMAC_SECRET, True),
        (request.body, "not-the-secret", False),
        (request.body.replace(b'"results"', b'"resultz"'), HMAC_SECRET, False),
    ]


def test_docs_python_sink_snippet_and_sdk_verify_a_real_push(
    sink_delivery: ReceivedRequest,
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python-agent-sink"), "verifying-signatures.md", "exec"), namespace)
    header = sink_delivery.headers["X-MT-Signature"]
    for body, secret, ok in sink_cases(sink_delivery):
        assert namespace["verify_sink_signature"](body, header, secret) is ok
        if ok:
            verify_sink_signature(body, sink_delivery.headers, [secret])
        else:
            with pytest.raises(WebhookVerificationError):
                verify_sink_signature(body, sink_delivery.headers, secret)
    payload = parse_sink_payload(sink_delivery.body)
    assert payload.job_id.startswith("job_") and payload.stats is not None
    assert payload.stats.total == 2


def test_docs_node_sink_snippet_verifies_a_real_push(
    sink_delivery: ReceivedRequest, tmp_path: Path
) -> None:
    header = sink_delivery.headers["X-MT-Signature"]
    cases = sink_cases(sink_delivery)
    results = run_node(
        snippet("node-agent-sink"),
        "verifySinkSignature(body, c.header, c.secret)",
        [
            {"body": base64.b64encode(body).decode(), "header": header, "secret": secret}
            for body, secret, _ in cases
        ],
        tmp_path,
    )
    assert results == [ok for _, _, ok in cases]
