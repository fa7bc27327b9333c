"""Seed 001 in a real browser, end to end: sign in → Developers → Delivery destinations →
New destination → Webhook → URL and events → Create → copy the signing secret (shown once)
→ a real delivery reaches a real receiver that verifies it with that secret → the log shows
it with its attempt (arriving without a reload) → an endpoint answering 500 ends DEAD →
retried from the page → arrives."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from harness.receiver import Receiver
from harness.stack import Stack
from libs.domain.signing import verify_v1
from tests.dashboard.conftest import fire, nav, shot, sign_in


async def create_destination(page: Page, name: str, url: str) -> str:
    """Through the form, as seed 001 tells a user; the secret read back from the clipboard."""
    await nav(page, "Delivery destinations")
    await page.get_by_role("link", name="New destination").click()
    await expect(page.get_by_label("Webhook")).to_be_checked()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Endpoint URL").fill(url)
    await page.get_by_label(re.compile(r"^mapping\.completed")).check()
    await shot(page, "02-new-destination")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("heading", name="Destination created")).to_be_visible()
    await page.get_by_role("button", name="Copy secret").click()
    await expect(page.get_by_text("Copied")).to_be_visible()
    secret = await page.evaluate("navigator.clipboard.readText()")
    assert secret.startswith("whsec_")
    assert secret == (await page.locator("#signing-secret").text_content() or "").strip()
    return secret


async def test_seed_001_walkthrough(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO", name="Acme <b>Travel</b>")
    await page.goto("/app/destinations")
    await expect(page).to_have_url(re.compile(r"/app/sign-in"))
    await shot(page, "01-sign-in")
    await sign_in(page, org["apiToken"])

    secret = await create_destination(page, "Production webhook", receiver.url("/prod"))
    await shot(page, "03-secret-shown-once")
    await page.get_by_role("link", name=re.compile("^Done")).click()
    await expect(page.get_by_role("heading", name="Production webhook")).to_be_visible()

    # The page is open before the event exists: its row must arrive without a reload.
    event_id = await fire(api, org)
    (request,) = await receiver.wait_for("/prod", 1)
    assert request.json()["eventId"] == event_id
    verify_v1(request.body, request.headers["X-Webhook-Signature"], secret)  # raises if not
    row = page.locator("#log-rows tr", has_text="SUCCEEDED")
    await expect(row).to_have_count(1)
    await shot(page, "04-destination")
    await row.get_by_role("link", name=re.compile("^del_")).click()
    await expect(page.locator("#delivery-status")).to_have_text("SUCCEEDED")
    attempts = page.locator("#attempts tr")
    await expect(attempts).to_have_count(1)
    await expect(attempts.first).to_contain_text("200")
    await expect(page.locator("#payload")).to_contain_text(event_id)
    await shot(page, "05-delivery")

    # An endpoint that answers 500 four times ends DEAD; retried from the page, it arrives.
    failing = receiver.script("/broken", [500, 500, 500, 500, 200])
    await create_destination(page, "Broken endpoint", failing)
    await page.get_by_role("link", name=re.compile("^Done")).click()
    await fire(api, org)
    dead = page.locator("#log-rows tr", has_text="DEAD")
    await expect(dead).to_have_count(1, timeout=30_000)
    await dead.get_by_role("link", name=re.compile("^del_")).click()
    await expect(page.locator("#attempts tr")).to_have_count(4)
    await expect(page.locator("#attempts")).to_contain_text("500")
    await expect(page.locator("#attempts")).to_contain_text("scripted failure")
    await shot(page, "06-dead-delivery")
    await page.get_by_role("button", name="Retry delivery").click()
    await expect(page.get_by_text("Retry queued")).to_be_visible()
    arrived = await receiver.wait_for("/broken", 5)
    assert arrived[-1].json()["eventId"] == arrived[0].json()["eventId"]
    for _ in range(50):
        await page.reload()
        if (await page.locator("#delivery-status").text_content() or "").strip() == "SUCCEEDED":
            break
        await page.wait_for_timeout(200)
    await expect(page.locator("#delivery-status")).to_have_text("SUCCEEDED")
    await expect(page.locator("#attempts tr")).to_have_count(5)

    await nav(page, "Delivery log")
    await expect(page.locator("#log-rows tr")).to_have_count(3)
    await shot(page, "07-delivery-log")

    # The endpoint's chart counts its attempts of the last day: four failures, one success.
    await page.locator("#log-rows").get_by_role("link", name="Broken endpoint").first.click()
    await expect(page.get_by_text("1 succeeded, 4 failed.")).to_be_visible()
    # One hour's bar, or two when the attempts straddle an hour (a run at 17:59:59 did).
    failed_bars = await page.locator("svg.chart rect.bar-failed").count()
    assert failed_bars in (1, 2), failed_bars
    await shot(page, "04b-destination-chart")
