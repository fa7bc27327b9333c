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
from tests.dashboard.conftest import api_agent, api_destination, api_sink, auth, fire, sign_in
from tests.support.factories import REPORT_JOB_REQUEST

AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
}


async def test_every_page_passes_axe(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO_MAX")
    dest = await api_destination(api, org, receiver.url("/a11y"), "a11y")
    agent = await api_agent(api, org, "a11y agent")
    sink = await api_sink(api, org, agent, "a11y sink", receiver.url("/a11y-sink"))
    # Jobs with webhooks: the Jobs page shows each one's status and "Recover since" form.
    hook = {"webhook": {"url": receiver.url("/a11y-job")}}
    for path, body in (
        ("/api/v1/mapping-jobs", hook),
        ("/api/v1/reports/jobs", {**REPORT_JOB_REQUEST, **hook}),
    ):
        made = await api.post(path, headers=auth(org), json=body)
        assert made.status_code in (201, 202), made.text
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
        f"/app/agents/{agent}/sinks/new",
        f"/app/agents/sinks/{sink}",
        f"/app/agents/sinks/{sink}/edit",
        f"/app/agents/sinks/{sink}/delete",
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
