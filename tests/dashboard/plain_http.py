"""What the dashboard's plain-HTTP tests share (test_dashboard_http.py,
test_dashboard_tenancy.py): signing in, a page's CSRF token, a URL nobody answers."""

from __future__ import annotations

import re

import httpx

from harness.stack import Stack

UNREACHABLE = "http://127.0.0.1:9/nobody"


async def signed_in(stack: Stack, org: dict[str, str]) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=stack.api_url, timeout=10)
    response = await client.post("/app/sign-in", data={"token": org["apiToken"]})
    assert response.status_code == 303, response.text
    return client


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = await client.get("/app/destinations")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)
