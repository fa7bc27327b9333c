"""axe-core (the engine behind Lighthouse's accessibility audit) on every dashboard page in
the real Chromium: labels, names, landmarks, colour contrast (WCAG 2 A and AA) — no
violation allowed."""

from __future__ import annotations

import re

import httpx
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect

from harness.receiver import Receiver
from harness.stack import Stack
from tests.dashboard.conftest import auth, fire, sign_in

AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
}


async def test_every_page_passes_axe(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")
    created = await api.post(
        "/api/v1/delivery-destinations",
        headers=auth(org),
        json={
            "type": "WEBHOOK",
            "name": "a11y",
            "webhookUrl": receiver.url("/a11y"),
            "events": ["mapping.completed"],
        },
    )
    dest = created.json()["id"]
    await fire(api, org)
    await receiver.wait_for("/a11y", 1)
    axe = Axe()
    found = {}
    await page.goto("/app/sign-in")
    results = await axe.run(page, options=AXE_OPTIONS)
    if results.violations_count:
        found["/app/sign-in"] = results.generate_report()
    await sign_in(page, org["apiToken"])
    await page.goto(f"/app/destinations/{dest}")
    await expect(page.locator("#log-rows tr")).to_have_count(1)
    delivery = await page.locator("#log-rows a[href^='/app/deliveries/']").first.get_attribute(
        "href"
    )
    pages = [
        "/app/destinations",
        "/app/destinations/new",
        f"/app/destinations/{dest}",
        f"/app/destinations/{dest}/edit",
        f"/app/destinations/{dest}/delete",
        "/app/webhooks/new",
        "/app/export-webhooks",
        "/app/agents",
        "/app/jobs",
        "/app/deliveries",
        str(delivery),
        "/app/settings",
        "/app/destinations/dest_none",
    ]
    for path in pages:
        await page.goto(path)
        results = await axe.run(page, options=AXE_OPTIONS)
        if results.violations_count:
            found[path] = results.generate_report()
    assert not found, "\n\n".join(f"{p}:\n{r}" for p, r in found.items())
    assert re.match(r"/app/deliveries/del_", str(delivery))
