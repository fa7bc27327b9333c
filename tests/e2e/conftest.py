"""The whole platform as real subprocesses: api, dispatcher and two senders."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from harness.stack import Stack
from tests.support.stacks import E2E_RETRY_SCALE, e2e_fixtures  # noqa: F401  (the e2e modules' scale)


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


stack_env, stack = e2e_fixtures("module")


@pytest.fixture
async def api_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client
