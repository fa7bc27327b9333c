"""The whole platform as real subprocesses: api, dispatcher and two senders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.services import ServiceProcess, create_org, free_port, service_env

# 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: a DEAD delivery in about 5 s.
E2E_RETRY_SCALE = "0.002"


@dataclass
class Stack:
    env: dict[str, str]
    api: ServiceProcess
    dispatcher: ServiceProcess
    senders: list[ServiceProcess]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.ops_port}"

    def all(self) -> list[ServiceProcess]:
        return [self.api, self.dispatcher, *self.senders]

    def create_org(self, plan: str = "PRO") -> dict[str, str]:
        return create_org(self.env, "e2e", plan)


def auth(org: dict[str, str]) -> dict[str, str]:
    """The headers that make a request this org's (its API token)."""
    return {"Authorization": f"Bearer {org['apiToken']}"}


# What a subscription and a destination need besides their URL, by the path of their door.
WEBHOOK_BODIES: dict[str, dict[str, object]] = {
    "/api/v1/webhook-subscriptions": {"name": "e2e", "events": ["MAPPING_COMPLETED"]},
    "/api/v1/delivery-destinations": {"type": "WEBHOOK", "events": ["mapping.completed"]},
}


async def create_webhook(
    client: httpx.AsyncClient, org: dict[str, str], door: str, url: str, **fields: object
) -> dict:
    """A subscription or a destination (`door`: its path) of this org, sending to `url`."""
    body = {**WEBHOOK_BODIES[door], "webhookUrl": url, **fields}
    response = await client.post(door, headers=auth(org), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def start_api(env: dict[str, str], ready_path: str = "/readyz") -> ServiceProcess:
    port = free_port()
    api = ServiceProcess("api", ["api", "--port", str(port)], env, ops_port=port)
    return api.start(ready_path=ready_path)


def start_worker(name: str, env: dict[str, str]) -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        name, [name.split("-")[0]], {**env, "HOOKPOST_OPS_PORT": str(port)}, port
    ).start()


@pytest.fixture(scope="module")
def stack_env(test_env: dict[str, str], db_pool: object) -> dict[str, str]:
    # db_pool: the database exists and is migrated before any service starts.
    return service_env(test_env, HOOKPOST_RETRY_DELAY_SCALE=E2E_RETRY_SCALE)


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str]) -> Iterator[Stack]:
    started: list[ServiceProcess] = []
    try:
        api = start_api(stack_env)
        started.append(api)
        dispatcher = start_worker("dispatcher", stack_env)
        started.append(dispatcher)
        senders = [start_worker("sender", stack_env) for _ in range(2)]
        started.extend(senders)
        yield Stack(stack_env, api, dispatcher, senders)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture
async def api_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client
