"""The rest of issue 20 in a real browser: rotate with a grace window (both secrets verify
inside it), a test send, Team Settings' reveal, a portal link that opens one org and expires,
keyboard-only creation of a subscription, 375 px, and hostile values rendered as text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg
import httpx
from playwright.async_api import Browser, Page, expect

from harness.receiver import Receiver
from harness.receiver.behaviours import Arrival, Reply
from harness.stack import Stack
from libs.domain.secrets import mask_secret
from libs.domain.signing import verify_v1
from tests.dashboard.conftest import api_destination, auth, fire, nav, shot, sign_in
from tests.dashboard.test_seed001_browser import create_destination

HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


async def test_rotate_with_grace_then_a_test_send(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")
    await sign_in(page, org["apiToken"])
    old = await create_destination(page, "Rotating", receiver.url("/rotate"))
    await page.get_by_role("link", name=re.compile("^Done")).click()

    await page.get_by_label("Old secret keeps signing for (seconds)").fill("120")
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_role("heading", name="Signing secret rotated")).to_be_visible()
    await expect(page.get_by_text("The previous secret keeps signing until")).to_be_visible()
    new = (await page.locator("#signing-secret").text_content() or "").strip()
    assert new.startswith("whsec_") and new != old
    await shot(page, "08-rotated-with-grace")

    await fire(api, org)
    (request,) = await receiver.wait_for("/rotate", 1)
    header = request.headers["X-Webhook-Signature"]
    assert header.count("v1=") == 2
    verify_v1(request.body, header, new)  # each secret alone verifies inside the window
    verify_v1(request.body, header, old)

    await page.get_by_role("link", name=re.compile("^Done")).click()
    await page.get_by_role("button", name="Send test").click()
    notice = page.get_by_role("status").filter(has_text="Test sent")
    await expect(notice).to_be_visible()
    test_delivery = (await notice.get_by_role("link").text_content() or "").strip()
    received = await receiver.wait_for("/rotate", 2)
    assert received[-1].json()["type"] == "webhook.test"
    assert received[-1].headers["X-Webhook-Delivery"].startswith("del_")
    row = page.locator("#log-rows tr", has_text=test_delivery)
    await expect(row).to_contain_text("SUCCEEDED")
    await expect(row).to_contain_text("webhook.test")


async def test_team_settings_reveal_signs_job_webhooks(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO_MAX", name="Settings org")
    await sign_in(page, org["apiToken"])
    await nav(page, "Team Settings")
    await expect(page.locator("#plan")).to_have_text("PRO_MAX")
    masked = (await page.locator("#secret-masked").text_content() or "").strip()
    await expect(page.locator("#webhook-secret")).to_have_count(0)  # only on purpose
    await page.get_by_role("button", name="Reveal secret").click()
    secret = (await page.locator("#webhook-secret").text_content() or "").strip()
    assert mask_secret(secret) == masked
    await shot(page, "09-team-settings-revealed")

    # The revealed secret is the one that signs the org's per-job webhooks.
    job = await api.post(
        "/api/v1/mapping-jobs", headers=auth(org), json={"webhook": {"url": receiver.url("/job")}}
    )
    assert job.status_code == 201, job.text
    done = await api.post(
        f"/api/v1/mapping-jobs/{job.json()['jobId']}/complete",
        headers=auth(org),
        json={"stats": {"total": 1, "matched": 1, "unmatched": 0}, "results": []},
    )
    assert done.status_code == 200, done.text
    (request,) = await receiver.wait_for("/job", 1)
    verify_v1(request.body, request.headers["X-Webhook-Signature"], secret)
    await nav(page, "Mapping jobs")
    await expect(page.locator("table")).to_contain_text(job.json()["jobId"])
    await shot(page, "10-mapping-jobs")
    await nav(page, "Agent sinks")
    await shot(page, "11-agent-sinks")

    audit = await api.get("/api/v1/audit-log", headers=auth(org))
    assert "organization.webhook_secret_revealed" in audit.text


async def test_portal_link_opens_one_org_and_expires(
    browser: Browser, stack: Stack, api: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    org, other = stack.create_org(name="Portal org"), stack.create_org(name="Other org")
    theirs = await api_destination(api, other, "http://127.0.0.1:9/x")
    minted = await api.post(
        "/api/v1/admin/organizations/" + org["organizationId"] + "/portal-links",
        headers={"Authorization": "Bearer admin-test-token"},
        json={"expiresInSeconds": 600},
    )
    assert minted.status_code == 201, minted.text
    link = minted.json()
    path = link["url"].removeprefix("http://127.0.0.1:8000")
    assert path.startswith("/app/portal/")

    context = await browser.new_context(base_url=stack.api_url)
    try:
        page = await context.new_page()
        await page.goto(path)
        await expect(page).to_have_url(re.compile(r"/app/deliveries$"))
        await expect(page.locator(".org")).to_contain_text("Portal org")
        await expect(page.locator(".org")).to_contain_text("portal")
        await shot(page, "12-portal-delivery-log")
        # Its own org only, and no Team Settings (no secrets, no further links).
        await expect(page.get_by_role("link", name="Team Settings")).to_have_count(0)
        response = await page.goto("/app/settings")
        assert response is not None and response.status == 403
        response = await page.goto(f"/app/destinations/{theirs}")
        assert response is not None and response.status == 404

        # It expires: the link opens nothing more and the session it opened ends.
        await db_pool.execute(
            "UPDATE dashboard_portal_links SET expires_at = now() - interval '1 second'"
            " WHERE id = $1",
            link["id"],
        )
        await page.goto("/app/deliveries")
        await expect(page).to_have_url(re.compile(r"/app/sign-in"))
        response = await page.goto(path)
        assert response is not None and response.status == 404
        await expect(page.get_by_role("alert")).to_contain_text("expired or was revoked")
    finally:
        await context.close()


async def focus(page: Page, name: str, limit: int = 40) -> None:
    """Press Tab until the element whose accessible text starts with `name` has the focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        text = await page.evaluate(
            "(() => { const e = document.activeElement;"
            " return (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent || '')"
            ".trim(); })()"
        )
        if text.startswith(name):
            return
    raise AssertionError(f"{name!r} never got the keyboard focus")


async def test_keyboard_only_creation_of_a_subscription(
    page: Page, stack: Stack, receiver: Receiver
) -> None:
    org = stack.create_org(plan="FREE")
    await page.goto("/app/sign-in")
    # The token field has the focus on arrival (`autofocus`, which the browser may apply just
    # after the load event: keys typed before it went nowhere and the test flaked).
    await expect(page.locator("#token")).to_be_focused()
    await page.keyboard.type(org["apiToken"])
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/destinations")
    await focus(page, "Webhooks")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/webhooks")
    await focus(page, "New webhook")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/webhooks/new")
    await focus(page, "Name")
    await page.keyboard.type("Keyboard only")
    await page.keyboard.press("Tab")
    await page.keyboard.type(receiver.url("/keys"))
    await focus(page, "MAPPING_COMPLETED")
    await page.keyboard.press("Space")
    # A FREE org sees the PRO events, disabled, with the plan that unlocks them.
    gated = page.get_by_label(re.compile("^MAPPING_ERROR_RESOLVED"))
    await expect(gated).to_be_disabled()
    await expect(
        page.get_by_text("Needs the PRO plan or above (you are on FREE)").first
    ).to_be_visible()
    await shot(page, "13-new-webhook-keyboard")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    await focus(page, "Create")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    await focus(page, "Done")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Keyboard only")).to_be_visible()
    await expect(page.locator("dl.facts")).to_contain_text("MAPPING_COMPLETED")


@dataclass
class HostileReply:
    def reply(self, arrival: Arrival) -> Reply:
        return Reply(500, f"<h1>boom</h1>{HOSTILE}")


async def test_hostile_values_are_text_and_pages_fit_375px(
    browser: Browser, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO", name=HOSTILE)
    url = receiver.behave("/hostile", HostileReply())
    dest = await api_destination(api, org, url, HOSTILE)
    await fire(api, org, {"mappingJobId": HOSTILE, "status": "COMPLETED", "note": HOSTILE})
    await receiver.wait_for("/hostile", 1)

    context = await browser.new_context(
        base_url=stack.api_url, viewport={"width": 375, "height": 800}, is_mobile=True
    )
    try:
        page = await context.new_page()
        await sign_in(page, org["apiToken"])
        pages = [
            ("/app/destinations", "14-mobile-destinations"),
            (f"/app/destinations/{dest}", "15-mobile-destination"),
            ("/app/destinations/new", "16-mobile-new-destination"),
            ("/app/deliveries", "17-mobile-delivery-log"),
            ("/app/settings", "18-mobile-team-settings"),
        ]
        for path, name in pages:
            await page.goto(path)
            await shot(page, name)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide at 375 px"
        await page.goto(f"/app/destinations/{dest}")
        await expect(page.locator("h1")).to_have_text(HOSTILE)  # as text, not markup
        row = page.locator("#log-rows tr").first
        await expect(row).to_be_visible()
        await row.get_by_role("link", name=re.compile("^del_")).click()
        await expect(page.locator("#attempts")).to_contain_text("<h1>boom</h1>", timeout=20_000)
        await expect(page.locator("#payload")).to_contain_text("onerror")
        await shot(page, "19-mobile-hostile-delivery")
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("script:not([src])").count() == 0
        assert await page.locator("img").count() == 0
    finally:
        await context.close()


async def test_edit_pause_activate_and_delete_with_confirmation(
    page: Page, stack: Stack, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")
    await sign_in(page, org["apiToken"])
    await create_destination(page, "Before", receiver.url("/edit"))
    await page.get_by_role("link", name=re.compile("^Done")).click()
    await shot(page, "20-destination-before-edit")

    await page.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Endpoint URL")).to_have_value("")  # kept unless typed
    await page.get_by_label("Name").fill("After")
    await page.get_by_label(re.compile(r"^mapping\.failed")).check()
    await page.get_by_label(re.compile("^Rate limit")).fill("7.5")
    await expect(page.get_by_label("Ordered delivery")).not_to_be_checked()
    await page.get_by_label("Ordered delivery").check()
    await shot(page, "21-edit-destination")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("heading", name="After")).to_be_visible()
    await expect(page.locator("dl.facts")).to_contain_text("mapping.failed")
    await expect(page.locator("dl.facts")).to_contain_text("/edit")  # the URL was kept

    await expect(page.locator("dl.facts")).to_contain_text("7.5 per second")
    ordered = page.locator("dl.facts dt:text-is('Ordered delivery') + dd")
    await expect(ordered).to_have_text("on")

    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("dl.facts")).to_contain_text("INACTIVE")
    await page.get_by_role("button", name="Activate").click()
    await expect(page.locator("dl.facts")).to_contain_text("ACTIVE")
    await expect(page.locator("dl.facts")).to_contain_text("7.5 per second")  # kept
    await expect(ordered).to_have_text("on")  # kept
    await page.get_by_role("link", name="Edit", exact=True).click()
    await expect(page.get_by_label("Ordered delivery")).to_be_checked()
    await page.get_by_label("Ordered delivery").uncheck()  # the page turns it off too
    await page.get_by_role("button", name="Save").click()
    await expect(ordered).to_have_text("off")

    await page.get_by_role("link", name="Delete…").click()
    await expect(page.get_by_role("heading", name="Delete After?")).to_be_visible()
    await shot(page, "22-delete-confirmation")
    await page.get_by_role("button", name="Delete for good").click()
    await expect(page.get_by_role("status")).to_have_text("Deleted.")
    await expect(page.get_by_text("No delivery destinations yet")).to_be_visible()

    # Export webhooks (seed 000) through the same pages: {url, active}, export.ready only.
    await nav(page, "Export webhooks")
    await page.get_by_role("link", name="New export webhook").click()
    await page.get_by_label("Endpoint URL").fill(receiver.url("/exports?token=s3cret-token"))
    await page.get_by_label(re.compile("^Rate limit")).fill("3")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("heading", name="Export webhook created")).to_be_visible()
    await page.get_by_role("link", name=re.compile("^Done")).click()
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("dl.facts")).to_contain_text("INACTIVE")
    await expect(page.locator("dl.facts")).to_contain_text("3.0 per second")  # set, then kept
    await nav(page, "Export webhooks")
    await expect(page.locator("table")).to_contain_text("export.ready")
    await expect(page.locator("table")).not_to_contain_text("s3cret-token")  # masked
    await shot(page, "23-export-webhooks")
    await nav(page, "Webhooks")
    await shot(page, "24-webhooks")
    response = await page.goto("/app/destinations/dest_nope")
    assert response is not None and response.status == 404
    await shot(page, "25-not-found")


async def test_recover_failed_deliveries_since_t(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")
    await sign_in(page, org["apiToken"])
    await create_destination(page, "Was down", receiver.script("/down", [500] * 4 + [200]))
    await page.get_by_role("link", name=re.compile("^Done")).click()
    event_id = await fire(api, org)
    dead = page.locator("#log-rows tr", has_text="DEAD")
    await expect(dead).to_have_count(1, timeout=30_000)

    await expect(page.get_by_label("Recover failed deliveries since (UTC)")).not_to_have_value("")
    await page.get_by_role("button", name="Recover").click()
    await expect(page.get_by_role("status")).to_contain_text("1 deliveries sent again")
    await shot(page, "26-recovered")
    arrived = await receiver.wait_for("/down", 5)
    assert arrived[-1].json()["eventId"] == event_id
    await expect(page.locator("#log-rows tr", has_text="SUCCEEDED")).to_have_count(1)


@dataclass
class FramingPage:
    """Another origin's page (the receiver's port) that frames a dashboard URL."""

    src: str

    def reply(self, arrival: Arrival) -> Reply:
        html = f'<!doctype html><title>customer app</title><iframe src="{self.src}"></iframe>'
        return Reply(200, html, {"Content-Type": "text/html"})


async def framed_frame_url(page: Page, framing_url: str) -> str:
    await page.goto(framing_url)
    frame = page.frame_locator("iframe")
    await page.wait_for_timeout(500)
    child = page.frames[1] if len(page.frames) > 1 else None
    if child is None:
        return ""
    try:
        await frame.locator("body").wait_for(timeout=5_000)
    except Exception:
        return child.url
    return child.url if await child.locator("h1").count() else "blocked:" + child.url


async def test_only_a_portal_links_own_origin_may_frame_the_pages(
    browser: Browser, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(name="Framed org")
    customer_origin = receiver.url("").rstrip("/")
    minted = await api.post(
        "/api/v1/portal-links",
        headers=auth(org),
        json={"expiresInSeconds": 600, "frameOrigin": customer_origin},
    )
    assert minted.status_code == 201, minted.text
    portal = stack.api_url + minted.json()["url"].removeprefix("http://127.0.0.1:8000")
    context = await browser.new_context(base_url=stack.api_url)
    try:
        page = await context.new_page()
        # The customer's own app frames its portal link: the delivery log loads inside it.
        shown = await framed_frame_url(page, receiver.behave("/embed", FramingPage(portal)))
        assert shown.endswith("/app/deliveries"), shown
        await expect(page.frame_locator("iframe").locator("h1")).to_have_text("Delivery log")
        await shot(page, "27-portal-framed-by-its-origin")
        # A signed-in page (no portal) framed by the same site is refused by the browser.
        await context.clear_cookies()
        await sign_in(page, org["apiToken"])
        blocked = await framed_frame_url(
            page, receiver.behave("/clickjack", FramingPage(stack.api_url + "/app/settings"))
        )
        assert blocked.startswith("chrome-error://"), blocked  # the browser refused to show it
        assert await page.frame_locator("iframe").locator("text=Team Settings").count() == 0
    finally:
        await context.close()
