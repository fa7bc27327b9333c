"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright)
against the platform as real subprocesses: api, dispatcher, sender, a real receiver.

One browser per module (Chromium starts once), a fresh context per test (its own cookies).
Every page a test visits is screenshotted: into .hookpost/screenshots by default, and into
docs/dashboard/ (the README's pictures) when HOOKPOST_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from harness.process import ROOT
from harness.stack import Stack
from tests.support.stacks import stack_on

# 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: a DEAD delivery in about 5 s.
RETRY_SCALE = "0.002"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# As the machine's probe starts it: no sandbox as root, no background calls to Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = (
    ROOT / "docs" / "dashboard"
    if os.environ.get("HOOKPOST_UPDATE_SCREENSHOTS") == "1"
    else ROOT / ".hookpost" / "screenshots"
)


def chromium_path() -> str:
    for candidate in (os.environ.get("HOOKPOST_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    pytest.fail(
        "Chromium is missing: `make test` installs Debian's `chromium` (scripts/"
        "ensure-chromium.sh); or set HOOKPOST_CHROMIUM to a Chromium binary"
    )


@pytest.fixture(scope="module")
async def stack(test_env: dict[str, str], db_pool: object) -> AsyncIterator[Stack]:
    # db_pool: the database exists and is migrated before any service starts.
    services = stack_on(test_env, HOOKPOST_RETRY_DELAY_SCALE=RETRY_SCALE)
    try:
        yield await services.start(dispatchers=1, senders=1)
    finally:
        await services.stop_all()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(
        base_url=stack.api_url, viewport={"width": 1280, "height": 900}
    )
    await made.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.api_url)
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def shot(page: Page, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/app")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/app/destinations")


async def nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    main = page.get_by_role("navigation", name="Main")
    await main.get_by_role("link", name=name, exact=True).click()


def auth(org: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {org['apiToken']}"}


async def fire(api: httpx.AsyncClient, org: dict[str, str], data: dict | None = None) -> str:
    response = await api.post(
        "/api/v1/events",
        headers=auth(org),
        json={
            "type": "mapping.completed",
            "data": data or {"mappingJobId": "job_1", "status": "COMPLETED", "rowCount": 1},
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["eventId"]


async def api_destination(
    api: httpx.AsyncClient, org: dict[str, str], url: str, name: str | None = None
) -> str:
    """A delivery destination hearing mapping.completed, made through the API: its id."""
    body = {"type": "WEBHOOK", "name": name, "webhookUrl": url, "events": ["mapping.completed"]}
    made = await api.post("/api/v1/delivery-destinations", headers=auth(org), json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def api_agent(api: httpx.AsyncClient, org: dict[str, str], name: str) -> str:
    made = await api.post("/api/v1/agents", headers=auth(org), json={"name": name})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def api_sink(
    api: httpx.AsyncClient, org: dict[str, str], agent_id: str, name: str, url: str
) -> str:
    """A Bearer results sink of the agent, made through the API: its id."""
    made = await api.post(
        f"/api/v1/agents/{agent_id}/data-sources",
        headers=auth(org),
        json={
            "role": "RESULTS_SINK",
            "type": "HTTPS_WEBHOOK",
            "name": name,
            "config": {"url": url, "authScheme": "Bearer"},
            "secret": {"value": "tok_0123456789"},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])
