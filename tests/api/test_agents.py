"""The agents door (seed 003): agents and their rules, the PRO_MAX gate, tenancy. Its results
sinks (data sources) are test_agent_sinks.py's."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from tests.api.agent_requests import (
    AGENT_FIELDS,
    AGENTS,
    DEFAULT_RULES,
    create_agent,
    create_sink,
)
from tests.api.conftest import (
    Client,
    MakeClient,
    assert_error,
)

# --- agents -------------------------------------------------------------------------------


async def test_create_agent_defaults(client: Client) -> None:
    agent = await create_agent(client)
    assert set(agent) == AGENT_FIELDS
    assert agent["id"].startswith("agt_") and len(agent["id"]) == 30
    assert agent["workspaceId"] == "ws_" + client.org_id.removeprefix("org_")
    assert agent["organizationId"] == client.org_id
    assert agent["status"] == "ACTIVE"
    assert agent["name"] == "Hotel mapper"
    # Outbound push is opt-in.
    assert agent["rules"] == DEFAULT_RULES


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5}, {"name": "a\x00b"}]
)
async def test_create_agent_bad_body_is_400(client: Client, body: dict[str, Any]) -> None:
    assert_error(await client.post(AGENTS, json=body), 400, "BAD_REQUEST")


async def test_create_agent_non_json_is_400(client: Client) -> None:
    response = await client.post(
        AGENTS, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "BAD_REQUEST")


async def test_agents_need_a_token(client: Client) -> None:
    response = await client.http.get(AGENTS)
    assert_error(response, 401, "UNAUTHORIZED")


async def test_list_and_get_are_per_org(client: Client, make_client: MakeClient) -> None:
    mine = [await create_agent(client, f"a{i}") for i in range(2)]
    other = await make_client(Plan.FREE)
    theirs = await create_agent(other)

    listed = await client.get(AGENTS)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["agents"]] == [a["id"] for a in mine]

    got = await client.get(f"{AGENTS}/{mine[1]['id']}")
    assert got.status_code == 200 and got.json() == mine[1]

    for method, path, kw in [
        ("get", "", {}),
        ("patch", "", {"json": {"status": "INACTIVE"}}),
        ("delete", "", {}),
        ("get", "/rules", {}),
        ("put", "/rules", {"json": DEFAULT_RULES}),
        ("get", f"/jobs/{new_id(IdPrefix.MAPPING_JOB)}/results", {}),
    ]:
        url = f"{AGENTS}/{theirs['id']}{path}"
        if method == "patch":
            response = await client.http.patch(
                url, headers={"Authorization": f"Bearer {client.token}"}, **kw
            )
        else:
            response = await getattr(client, method)(url, **kw)
        assert_error(response, 404, "NOT_FOUND")
    # Untouched.
    assert (await other.get(f"{AGENTS}/{theirs['id']}")).json()["status"] == "ACTIVE"


async def patch(client: Client, url: str, body: Any) -> Any:
    return await client.http.patch(
        url, json=body, headers={"Authorization": f"Bearer {client.token}"}
    )


async def test_activate_and_deactivate(client: Client) -> None:
    agent = await create_agent(client)
    url = f"{AGENTS}/{agent['id']}"
    off = await patch(client, url, {"status": "INACTIVE"})
    assert off.status_code == 200, off.text
    assert off.json()["status"] == "INACTIVE" and off.json()["name"] == agent["name"]
    assert (await client.get(url)).json()["status"] == "INACTIVE"
    on = await patch(client, url, {"status": "ACTIVE", "name": "renamed"})
    assert on.status_code == 200
    assert on.json()["status"] == "ACTIVE" and on.json()["name"] == "renamed"


@pytest.mark.parametrize("body", [{}, {"status": "PAUSED"}, {"name": ""}, [1]])
async def test_patch_bad_body_is_400(client: Client, body: Any) -> None:
    agent = await create_agent(client)
    assert_error(await patch(client, f"{AGENTS}/{agent['id']}", body), 400, "BAD_REQUEST")


async def test_patch_unknown_agent_is_404(client: Client) -> None:
    response = await patch(client, f"{AGENTS}/agt_nope", {"status": "ACTIVE"})
    assert_error(response, 404, "NOT_FOUND")


async def test_delete_agent_takes_its_sinks(max_client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await create_agent(max_client)
    sink = await create_sink(max_client, agent["id"])
    job_id = new_id(IdPrefix.MAPPING_JOB)
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id) VALUES ($1, $2, $3)",
        job_id,
        max_client.org_id,
        agent["id"],
    )
    response = await max_client.delete(f"{AGENTS}/{agent['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_error(await max_client.get(f"{AGENTS}/{agent['id']}"), 404, "NOT_FOUND")
    assert await db_pool.fetchval("SELECT count(*) FROM endpoints WHERE id = $1", sink["id"]) == 0
    # The job stays, without an agent.
    assert await db_pool.fetchval("SELECT agent_id FROM mapping_jobs WHERE id = $1", job_id) is None
    assert_error(await max_client.delete(f"{AGENTS}/{agent['id']}"), 404, "NOT_FOUND")
    actions = await db_pool.fetch(
        "SELECT action FROM audit_log WHERE organization_id = $1 ORDER BY id", max_client.org_id
    )
    assert [r["action"] for r in actions] == [
        "agent.created",
        "agent_sink.created",
        "agent.deleted",
    ]


# --- rules --------------------------------------------------------------------------------


async def test_rules_get_and_put(client: Client, db_pool: asyncpg.Pool) -> None:
    agent = await create_agent(client)
    url = f"{AGENTS}/{agent['id']}/rules"
    got = await client.get(url)
    assert got.status_code == 200 and got.json() == DEFAULT_RULES

    wanted = {"data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 0}}
    put = await client.put(url, json=wanted)
    assert put.status_code == 200, put.text
    assert put.json() == wanted
    assert (await client.get(url)).json() == wanted
    assert (await client.get(f"{AGENTS}/{agent['id']}")).json()["rules"] == wanted
    stored = await db_pool.fetchval("SELECT rules FROM agents WHERE id = $1", agent["id"])
    assert stored == wanted

    # PUT replaces: an omitted key takes its default.
    partial = await client.put(url, json={"data_sinks": {"auto_push_on_job_complete": True}})
    assert partial.json() == {
        "data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 2}
    }


@pytest.mark.parametrize(
    "body",
    [
        {"data_sinks": {"retry_failed_push": 4}},
        {"data_sinks": {"retry_failed_push": -1}},
        {"data_sinks": {"retry_failed_push": "2"}},
        {"data_sinks": {"retry_failed_push": 1.5}},
        {"data_sinks": {"auto_push_on_job_complete": "yes"}},
        {"data_sinks": {"auto_push": True}},  # a typo must not silently keep push off
        {"dataSinks": {}},
        {},
        [],
    ],
)
async def test_rules_out_of_range_or_unknown_is_400(client: Client, body: Any) -> None:
    agent = await create_agent(client)
    url = f"{AGENTS}/{agent['id']}/rules"
    error = assert_error(await client.put(url, json=body), 400, "BAD_REQUEST")
    assert error["message"]
    assert (await client.get(url)).json() == DEFAULT_RULES
