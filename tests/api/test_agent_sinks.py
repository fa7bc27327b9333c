"""The agents door's results sinks (seed 003): data sources, /test, syncs, the PRO_MAX gate,
tenancy, secrets stored encrypted and only ever shown masked."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra import crypto
from tests.api.agent_requests import (
    AGENTS,
    DS_FIELDS,
    SECRET,
    create_agent,
    create_sink,
    sink_body,
)
from tests.api.conftest import (
    Client,
    MakeClient,
    admin_url,
    assert_error,
    insert_delivery,
)

# --- data sources -------------------------------------------------------------------------


async def test_create_data_source(max_client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await create_agent(max_client)
    response = await max_client.post(f"{AGENTS}/{agent['id']}/data-sources", json=sink_body())
    assert response.status_code == 201, response.text
    assert SECRET not in response.text and "tok-abc" not in response.text
    sink = response.json()
    assert set(sink) == DS_FIELDS
    assert sink["id"].startswith("ds_")
    assert sink["agentId"] == agent["id"]
    assert sink["role"] == "RESULTS_SINK" and sink["type"] == "HTTPS_WEBHOOK"
    assert sink["format"] == "JSON" and sink["status"] == "ACTIVE"
    assert sink["name"] == "Internal BI ingest"
    assert sink["config"]["authScheme"] == "HmacSha256"
    assert sink["config"]["url"].startswith("https://localhost/mapping-results?token=")
    assert sink["secret"] == {"valueMasked": "••••" + SECRET[-4:]}

    row = await db_pool.fetchrow("SELECT * FROM endpoints WHERE id = $1", sink["id"])
    assert row["kind"] == "AGENT_SINK"
    assert row["agent_id"] == agent["id"]
    assert row["events"] == ["mapping.completed"]
    assert row["signature_scheme"] == "mt-hmac-sha256"
    assert crypto.decrypt(row["secret_enc"]) == SECRET
    assert SECRET.encode() not in bytes(row["secret_enc"])
    assert crypto.decrypt(row["url_enc"]) == "https://localhost/mapping-results?token=tok-abc"


@pytest.mark.parametrize(
    ("scheme", "secret", "stored"),
    [("Bearer", "tok_live_123456", "bearer"), ("Basic", "ingest:p@ss:word", "basic")],
)
async def test_create_bearer_and_basic_sinks(
    max_client: Client, db_pool: asyncpg.Pool, scheme: str, secret: str, stored: str
) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(
        max_client,
        agent["id"],
        config={"url": "https://localhost/in", "authScheme": scheme},
        secret={"value": secret},
    )
    assert sink["config"]["authScheme"] == scheme
    row = await db_pool.fetchrow(
        "SELECT signature_scheme, secret_enc FROM endpoints WHERE id = $1", sink["id"]
    )
    assert row["signature_scheme"] == stored
    assert crypto.decrypt(row["secret_enc"]) == secret


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "SOURCE"},
        {"type": "SFTP"},
        {"format": "CSV"},
        {"config": {"url": "https://localhost/x", "authScheme": "Digest"}},
        {"config": {"url": "https://localhost/x"}},
        {"config": {"url": "ftp://localhost/x", "authScheme": "Bearer"}},
        {"config": {"url": "not a url", "authScheme": "Bearer"}},
        {"secret": {"value": ""}},
        {"secret": {}},
        {
            "config": {"url": "https://localhost/x", "authScheme": "Basic"},
            "secret": {"value": "nocolon"},
        },
        {
            "config": {"url": "https://localhost/x", "authScheme": "Basic"},
            "secret": {"value": ":pw"},
        },
        {
            "config": {"url": "https://localhost/x", "authScheme": "Bearer"},
            "secret": {"value": "a\r\nX: y"},
        },
        {
            "config": {"url": "https://localhost/x", "authScheme": "Bearer"},
            "secret": {"value": "tøken"},
        },
    ],
)
async def test_create_data_source_bad_body_is_400(
    max_client: Client, db_pool: asyncpg.Pool, overrides: dict[str, Any]
) -> None:
    agent = await create_agent(max_client)
    body = sink_body(**overrides)
    response = await max_client.post(f"{AGENTS}/{agent['id']}/data-sources", json=body)
    assert_error(response, 400, "BAD_REQUEST")
    count = await db_pool.fetchval(
        "SELECT count(*) FROM endpoints WHERE agent_id = $1", agent["id"]
    )
    assert count == 0


async def test_list_get_delete_data_sources(max_client: Client) -> None:
    agent = await create_agent(max_client)
    other_agent = await create_agent(max_client, "other")
    sinks = [await create_sink(max_client, agent["id"], name=f"s{i}") for i in range(2)]
    await create_sink(max_client, other_agent["id"])
    base = f"{AGENTS}/{agent['id']}/data-sources"

    listed = await max_client.get(base)
    assert listed.status_code == 200
    assert SECRET not in listed.text and "tok-abc" not in listed.text
    assert listed.json() == {"dataSources": sinks}

    got = await max_client.get(f"{base}/{sinks[0]['id']}")
    assert got.status_code == 200 and got.json() == sinks[0]
    # A sink of another agent of the same org is not this agent's.
    other_sink = (await max_client.get(f"{AGENTS}/{other_agent['id']}/data-sources")).json()
    other_id = other_sink["dataSources"][0]["id"]
    assert_error(await max_client.get(f"{base}/{other_id}"), 404, "NOT_FOUND")
    assert_error(await max_client.delete(f"{base}/{other_id}"), 404, "NOT_FOUND")

    deleted = await max_client.delete(f"{base}/{sinks[0]['id']}")
    assert deleted.status_code == 204
    assert_error(await max_client.get(f"{base}/{sinks[0]['id']}"), 404, "NOT_FOUND")
    assert [s["id"] for s in (await max_client.get(base)).json()["dataSources"]] == [sinks[1]["id"]]


async def test_enterprise_may_add_sinks(make_client: MakeClient) -> None:
    enterprise = await make_client(Plan.ENTERPRISE)
    agent = await create_agent(enterprise)
    await create_sink(enterprise, agent["id"])


def sink_routes(agent_id: str, ds_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"{AGENTS}/{agent_id}/data-sources"
    return [
        ("post", base, {"json": sink_body()}),
        ("get", base, {}),
        ("get", f"{base}/{ds_id}", {}),
        ("put", f"{base}/{ds_id}", {"json": sink_body()}),
        ("delete", f"{base}/{ds_id}", {}),
        ("post", f"{base}/{ds_id}/test", {}),
        ("get", f"{base}/{ds_id}/syncs", {}),
    ]


@pytest.mark.parametrize("plan", [Plan.FREE, Plan.PRO])
async def test_sinks_need_pro_max(
    make_client: MakeClient, max_client: Client, db_pool: asyncpg.Pool, plan: Plan
) -> None:
    client = await make_client(plan)
    agent = await create_agent(client)
    for method, url, kw in sink_routes(agent["id"], "ds_whatever"):
        error = assert_error(await getattr(client, method)(url, **kw), 403, "FORBIDDEN")
        assert "PRO_MAX" in error["message"]
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM endpoints WHERE organization_id = $1", client.org_id
        )
        == 0
    )


async def test_another_orgs_agent_and_sink_are_404(
    max_client: Client, make_client: MakeClient
) -> None:
    other = await make_client(Plan.PRO_MAX)
    their_agent = await create_agent(other)
    their_sink = await create_sink(other, their_agent["id"])
    my_agent = await create_agent(max_client)
    # Their agent under my token, and their sink under my agent.
    for agent_id in (their_agent["id"], my_agent["id"]):
        for method, url, kw in sink_routes(agent_id, their_sink["id"]):
            if agent_id == my_agent["id"] and url.endswith("/data-sources"):
                continue  # my agent's collection routes are mine
            response = await getattr(max_client, method)(url, **kw)
            assert_error(response, 404, "NOT_FOUND")
    still = await other.get(f"{AGENTS}/{their_agent['id']}/data-sources/{their_sink['id']}")
    assert still.status_code == 200


async def test_test_route_queues_a_synthetic_sink_payload(
    max_client: Client, db_pool: asyncpg.Pool
) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(max_client, agent["id"])
    response = await max_client.post(f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}/test")
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveryId"]
    assert delivery_id.startswith("del_")
    event = await db_pool.fetchrow(
        "SELECT type, data, target_endpoint_id, target_delivery_id FROM events"
        " WHERE target_delivery_id = $1",
        delivery_id,
    )
    assert event["type"] == "webhook.test"
    assert event["target_endpoint_id"] == sink["id"]
    payload = event["data"]["sinkPayload"]
    assert set(payload) == {"jobId", "agentId", "workspaceId", "completedAt", "stats", "results"}
    assert payload["agentId"] == agent["id"] and payload["workspaceId"] == agent["workspaceId"]
    assert payload["jobId"].startswith("job_")
    assert payload["stats"] == {"total": 2, "matched": 1, "unmatched": 1}
    assert len(payload["results"]) == 2
    assert event["data"]["dataSourceId"] == sink["id"]


async def test_syncs_list_every_attempt(max_client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(max_client, agent["id"])
    _, delivery_id = await insert_delivery(
        db_pool,
        max_client.org_id,
        sink["id"],
        status="DEAD",
        attempt_count=3,
        data={"mappingJobId": "job_42"},
        attempts=[(500, "HTTP 500", False), (None, "timeout", False), (503, "HTTP 503", False)],
    )
    url = f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}/syncs"
    response = await max_client.get(url)
    assert response.status_code == 200, response.text
    syncs = response.json()["syncs"]
    assert len(syncs) == 3
    assert {s["attemptNumber"] for s in syncs} == {1, 2, 3}
    for sync in syncs:
        assert sync["deliveryId"] == delivery_id
        assert sync["jobId"] == "job_42"
        assert sync["eventType"] == "mapping.completed"
        assert sync["status"] == "FAILED" and sync["succeeded"] is False
        assert sync["deliveryStatus"] == "DEAD"
        assert sync["durationMs"] == 12
    assert {s["httpStatus"] for s in syncs} == {500, None, 503}
    limited = await max_client.get(url, params={"limit": 2})
    assert len(limited.json()["syncs"]) == 2
    assert_error(await max_client.get(url, params={"limit": 0}), 400, "BAD_REQUEST")


async def test_job_results_route(max_client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await create_agent(max_client)
    other_agent = await create_agent(max_client, "other")
    job_id = new_id(IdPrefix.MAPPING_JOB)
    results = [{"partnerRowId": "row_1", "referenceHotelId": None}]
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id, status, results)"
        " VALUES ($1, $2, $3, 'COMPLETED', $4)",
        job_id,
        max_client.org_id,
        agent["id"],
        results,
    )
    response = await max_client.get(f"{AGENTS}/{agent['id']}/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    assert response.json() == {"jobId": job_id, "agentId": agent["id"], "results": results}
    wrong = await max_client.get(f"{AGENTS}/{other_agent['id']}/jobs/{job_id}/results")
    assert_error(wrong, 404, "NOT_FOUND")


async def test_put_data_source_replaces_it_and_reactivates_after_a_downgrade(
    max_client: Client, db_pool: asyncpg.Pool, admin_auth: dict[str, str]
) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(max_client, agent["id"])
    url = f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}"
    plan_url = admin_url(max_client.org_id, "/plan")

    down = await max_client.http.put(plan_url, headers=admin_auth, json={"plan": "PRO"})
    assert down.status_code == 200, down.text
    assert sink["id"] in down.json()["deactivatedEndpoints"]
    assert_error(await max_client.get(url), 403, "FORBIDDEN")
    up = await max_client.http.put(plan_url, headers=admin_auth, json={"plan": "PRO_MAX"})
    assert up.status_code == 200
    off = (await max_client.get(url)).json()
    assert off["status"] == "INACTIVE" and off["deactivatedReason"] == "PLAN_DOWNGRADE"

    body = sink_body(
        name="renamed",
        config={"url": "https://localhost/v2", "authScheme": "Basic"},
        secret={"value": "ingest:n3w-password"},
    )
    replaced = await max_client.put(url, json=body)
    assert replaced.status_code == 200, replaced.text
    assert "n3w-password" not in replaced.text
    out = replaced.json()
    assert out["status"] == "ACTIVE" and out["deactivatedReason"] is None
    assert out["name"] == "renamed" and out["config"] == {
        "url": "https://localhost/v2",
        "authScheme": "Basic",
    }
    assert out["secret"] == {"valueMasked": "••••word"}
    assert (await max_client.get(url)).json() == out
    row = await db_pool.fetchrow(
        "SELECT signature_scheme, secret_enc, agent_id FROM endpoints WHERE id = $1", sink["id"]
    )
    assert row["signature_scheme"] == "basic" and row["agent_id"] == agent["id"]
    assert crypto.decrypt(row["secret_enc"]) == "ingest:n3w-password"

    bad = sink_body(config={"url": "https://localhost/v2", "authScheme": "Basic"})
    assert_error(
        await max_client.put(url, json={**bad, "secret": {"value": "x"}}), 400, "BAD_REQUEST"
    )
    assert_error(
        await max_client.put(f"{AGENTS}/{agent['id']}/data-sources/ds_nope", json=body),
        404,
        "NOT_FOUND",
    )


async def test_put_data_source_without_a_secret_keeps_it(
    max_client: Client, db_pool: asyncpg.Pool
) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(max_client, agent["id"])
    url = f"{AGENTS}/{agent['id']}/data-sources/{sink['id']}"
    keep = {k: v for k, v in sink_body(name="paused").items() if k != "secret"}
    paused = await max_client.put(url, json={**keep, "status": "INACTIVE"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "INACTIVE" and paused.json()["name"] == "paused"
    assert paused.json()["secret"] == sink["secret"]
    stored = await db_pool.fetchval("SELECT secret_enc FROM endpoints WHERE id = $1", sink["id"])
    assert crypto.decrypt(stored) == SECRET
    # A kept secret was checked for its scheme only: another scheme needs its own secret.
    bearer = {**keep, "config": {"url": "https://localhost/x", "authScheme": "Bearer"}}
    assert_error(await max_client.put(url, json=bearer), 400, "BAD_REQUEST")
    # Creating still needs one.
    assert_error(
        await max_client.post(f"{AGENTS}/{agent['id']}/data-sources", json=keep),
        400,
        "BAD_REQUEST",
    )
