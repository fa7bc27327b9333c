"""What the agents door's tests send and expect (test_agents.py, test_agent_sinks.py)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Client

AGENTS = "/api/v1/agents"
SECRET = "s3cr3t-0123456789abcdef0123456789abcdef"
AGENT_FIELDS = {
    "id",
    "organizationId",
    "name",
    "workspaceId",
    "status",
    "rules",
    "createdAt",
    "updatedAt",
}
DEFAULT_RULES = {"data_sinks": {"auto_push_on_job_complete": False, "retry_failed_push": 2}}
DS_FIELDS = {
    "id",
    "agentId",
    "organizationId",
    "role",
    "type",
    "name",
    "config",
    "secret",
    "format",
    "status",
    "deactivatedReason",
    "rateLimitPerSecond",
    "createdAt",
    "updatedAt",
}


def sink_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role": "RESULTS_SINK",
        "type": "HTTPS_WEBHOOK",
        "name": "Internal BI ingest",
        "config": {
            "url": "https://localhost/mapping-results?token=tok-abc",
            "authScheme": "HmacSha256",
        },
        "secret": {"value": SECRET},
        "format": "JSON",
    }
    body.update(overrides)
    return body


async def create_agent(client: Client, name: str = "Hotel mapper") -> dict[str, Any]:
    response = await client.post(AGENTS, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def create_sink(client: Client, agent_id: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(f"{AGENTS}/{agent_id}/data-sources", json=sink_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()
