"""Seed 003 from the dashboard in a real browser: an agent's results sink added from the page
(its generated secret shown once), a test push and a real job's push that a real receiver
verifies (X-MT-Signature) with the secret copied from the page, the agent's rules edited,
the sink's delivery log and the org-wide log's endpoint picker; edit, pause and activate,
replace the secret, recover failed pushes, delete; the Pro Max gate; another org's 404;
hostile names as text; the rules set by keyboard alone."""

from __future__ import annotations

import base64
import re

import httpx
from playwright.async_api import Browser, Page, expect

from harness.receiver import Receiver
from harness.stack import Stack
from libs.domain.signing import MT_SIGNATURE_HEADER, verify_mt
from tests.dashboard.conftest import (
    api_agent,
    api_destination,
    api_sink,
    auth,
    nav,
    shot,
    sign_in,
)
from tests.dashboard.test_dashboard_browser import HOSTILE, focus

RESULTS = [{"partnerRowId": "row_1", "referenceHotelId": "ref_1", "matchMethod": "STANDARD"}]


async def complete_a_job(api: httpx.AsyncClient, org: dict[str, str], agent_id: str) -> str:
    """A mapping job of the agent finishes (the producer's calls): its push follows."""
    job = await api.post("/api/v1/mapping-jobs", headers=auth(org), json={"agentId": agent_id})
    assert job.status_code == 201, job.text
    job_id = str(job.json()["jobId"])
    done = await api.post(
        f"/api/v1/mapping-jobs/{job_id}/complete",
        headers=auth(org),
        json={"stats": {"total": 1, "matched": 1, "unmatched": 0}, "results": RESULTS},
    )
    assert done.status_code == 200, done.text
    return job_id


async def add_sink(page: Page, agent: str, name: str, url: str, scheme: str, secret: str) -> None:
    """Agent sinks → Add a results sink → the seed's fields → Add."""
    await nav(page, "Agent sinks")
    await page.get_by_role("link", name=f"Add a results sink to {agent}").click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Endpoint URL").fill(url)
    await page.get_by_label("Auth scheme").select_option(scheme)
    await page.get_by_label("Secret", exact=True).fill(secret)
    await expect(page.get_by_label("Format")).to_have_value("JSON")
    await page.get_by_role("button", name="Add results sink").click()


async def create_agent_on_the_page(page: Page, name: str) -> str:
    await nav(page, "Agent sinks")
    await page.get_by_label("Agent name").fill(name)
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("status")).to_have_text("Agent created.")
    return (await page.locator("section.card h2 code").first.text_content() or "").strip()


async def test_a_sink_added_from_the_page_gets_pushes_signed_with_its_secret(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO_MAX", name="Sink org")
    await sign_in(page, org["apiToken"])
    agent_id = await create_agent_on_the_page(page, "Hotel mapper")

    await page.get_by_role("link", name="Add a results sink to Hotel mapper").click()
    await page.get_by_label("Name").fill("Internal BI ingest")
    await page.get_by_label("Endpoint URL").fill(receiver.url("/bi"))
    await expect(page.get_by_label("Auth scheme")).to_have_value("HmacSha256")
    await shot(page, "28-new-results-sink")
    await page.get_by_role("button", name="Add results sink").click()  # secret left empty
    await expect(page.get_by_role("heading", name="Results sink created")).to_be_visible()
    await page.get_by_role("button", name="Copy secret").click()
    secret = await page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(r"[0-9a-f]{64}", secret), secret  # 32 random bytes
    await shot(page, "29-sink-secret-shown-once")

    await page.get_by_role("link", name=re.compile("^Done")).click()
    await expect(page.get_by_role("heading", name="Internal BI ingest")).to_be_visible()
    assert secret not in await page.content()  # never shown again
    await page.get_by_role("button", name="Send test").click()
    await expect(page.get_by_role("status").filter(has_text="Test sent")).to_be_visible()
    (test_push,) = await receiver.wait_for("/bi", 1)
    verify_mt(test_push.body, test_push.headers[MT_SIGNATURE_HEADER], secret)  # raises if not
    assert test_push.json()["agentId"] == agent_id

    # The rules: push on job complete, one retry; then a real job's results arrive.
    await nav(page, "Agent sinks")
    await page.get_by_label(re.compile("^Push on job complete")).check()
    await page.get_by_label(re.compile("^Retries of a failed push")).fill("1")
    await page.get_by_role("button", name="Save rules").click()
    await expect(page.get_by_role("status")).to_have_text("Rules saved.")
    await expect(page.get_by_label(re.compile("^Push on job complete"))).to_be_checked()
    await expect(page.get_by_label(re.compile("^Retries of a failed push"))).to_have_value("1")
    rules = await api.get(f"/api/v1/agents/{agent_id}/rules", headers=auth(org))
    assert rules.json() == {
        "data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 1}
    }
    await shot(page, "30-agent-sinks")
    job_id = await complete_a_job(api, org, agent_id)
    pushed = (await receiver.wait_for("/bi", 2))[-1]
    verify_mt(pushed.body, pushed.headers[MT_SIGNATURE_HEADER], secret)
    assert pushed.json()["jobId"] == job_id and pushed.json()["results"][0]["partnerRowId"]

    # The sink's delivery log shows both; the org-wide log picks it among the endpoints.
    await page.get_by_role("link", name="Pushes of Internal BI ingest").click()
    rows = page.locator("#log-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="mapping.completed")).to_contain_text("SUCCEEDED")
    await expect(rows.filter(has_text="webhook.test")).to_contain_text("SUCCEEDED")
    await page.locator("#log-rows").get_by_role("link", name="Internal BI ingest").first.click()
    await expect(page.get_by_text("2 succeeded, 0 failed.")).to_be_visible()
    await shot(page, "31-results-sink")


async def test_the_org_log_filters_by_endpoint_with_keyset_pages(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO_MAX")
    for name in ("First", "Second"):
        await api_destination(api, org, receiver.url(f"/pick-{name}"), name)
    for _ in range(3):
        sent = await api.post(
            "/api/v1/events",
            headers=auth(org),
            json={"type": "mapping.completed", "data": {"mappingJobId": "j", "status": "OK"}},
        )
        assert sent.status_code == 202
    await receiver.wait_for("/pick-First", 3)
    await receiver.wait_for("/pick-Second", 3)
    await sign_in(page, org["apiToken"])
    await nav(page, "Delivery log")
    await expect(page.locator("#log-rows tr")).to_have_count(6)
    await page.get_by_label("Endpoint", exact=True).select_option(label="Second")
    await page.get_by_label("Status", exact=True).select_option("SUCCEEDED")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#log-rows tr")).to_have_count(3)
    await expect(page.locator("#log-rows")).not_to_contain_text("First")
    await expect(page.get_by_label("Endpoint", exact=True)).to_have_value(re.compile("^dest_"))
    await shot(page, "32-log-endpoint-picker")


async def test_edit_pause_replace_secret_recover_and_delete_a_sink(
    page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO_MAX")
    agent_id = await api_agent(api, org, "Editor agent")
    url = receiver.script("/basic", [200, 200, 500, 200])
    await sign_in(page, org["apiToken"])
    await add_sink(page, "Editor agent", "Before", url, "Basic", "ingest:pw-one")
    await expect(page.get_by_role("status")).to_have_text("Created.")  # typed: not shown again
    assert "pw-one" not in await page.content()

    await page.get_by_role("link", name="Edit", exact=True).click()
    await expect(page.get_by_label("Endpoint URL")).to_have_value("")  # kept unless typed
    await page.get_by_label("Name").fill("After")
    await page.get_by_label(re.compile("^Rate limit")).fill("5")
    await shot(page, "33-edit-results-sink")
    await page.get_by_role("button", name="Save").click()
    facts = page.locator("dl.facts")
    await expect(page.get_by_role("heading", name="After")).to_be_visible()
    await expect(facts).to_contain_text("5.0 per second")
    await expect(facts).to_contain_text("Basic")
    await expect(facts).to_contain_text("/basic")
    await page.get_by_role("button", name="Pause").click()
    await expect(facts).to_contain_text("INACTIVE")
    await page.get_by_role("button", name="Activate").click()
    await expect(page.get_by_role("status")).to_have_text("Activated.")
    await expect(facts).to_contain_text("5.0 per second")

    # Edit, pause and activate kept the secret: the test push carries it.
    await page.get_by_role("button", name="Send test").click()
    (first,) = await receiver.wait_for("/basic", 1)
    basic = "Basic " + base64.b64encode(b"ingest:pw-one").decode()
    assert first.headers["Authorization"] == basic

    await page.get_by_label("New secret").fill("ingest:pw-two")
    await page.get_by_role("button", name="Replace secret").click()
    await expect(page.get_by_role("status")).to_contain_text("Secret replaced")
    await page.get_by_role("button", name="Send test").click()
    second = (await receiver.wait_for("/basic", 2))[-1]
    assert second.headers["Authorization"] == "Basic " + base64.b64encode(b"ingest:pw-two").decode()

    # A job's push answered 500 with no retry left ends DEAD; recovered from the page.
    rules = {"data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 0}}
    put = await api.put(f"/api/v1/agents/{agent_id}/rules", headers=auth(org), json=rules)
    assert put.status_code == 200, put.text
    await complete_a_job(api, org, agent_id)
    await expect(page.locator("#log-rows tr", has_text="DEAD")).to_have_count(1, timeout=30_000)
    await page.get_by_role("button", name="Recover").click()
    await expect(page.get_by_role("status")).to_contain_text("1 deliveries sent again")
    await receiver.wait_for("/basic", 4)
    await expect(page.locator("#log-rows tr", has_text="DEAD")).to_have_count(0, timeout=20_000)
    await shot(page, "34-results-sink-recovered")

    await page.get_by_role("link", name="Delete…").click()
    await expect(page.get_by_role("heading", name="Delete After?")).to_be_visible()
    await page.get_by_role("button", name="Delete for good").click()
    await expect(page.get_by_role("status")).to_have_text("Results sink deleted.")
    await expect(page.get_by_text("No results sink yet.")).to_be_visible()


async def test_plan_gate_tenancy_hostile_names_and_keyboard_rules(
    browser: Browser, page: Page, stack: Stack, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    owner = stack.create_org(plan="PRO_MAX", name="Owner")
    agent_id = await api_agent(api, owner, HOSTILE)
    sink = await api_sink(api, owner, agent_id, HOSTILE, receiver.url("/hostile-sink"))

    # Hostile names are text on every sink page, and the pages fit 375 px.
    await sign_in(page, owner["apiToken"])
    await page.set_viewport_size({"width": 375, "height": 800})
    for path in ("/app/agents", f"/app/agents/sinks/{sink}", f"/app/agents/sinks/{sink}/edit"):
        await page.goto(path)
        await expect(page.get_by_text(HOSTILE).first).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide at 375 px"
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("script:not([src])").count() == 0
        assert await page.locator("img").count() == 0

    await shot(page, "36-mobile-hostile-sink-form")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # The rules by keyboard alone: every control is reachable and named by its label.
    await page.goto("/app/agents")
    await focus(page, "Push on job complete")
    await page.keyboard.press("Space")
    await focus(page, "Retries of a failed push")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("3")
    await focus(page, "Save rules")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("Rules saved.")
    rules = await api.get(f"/api/v1/agents/{agent_id}/rules", headers=auth(owner))
    assert rules.json()["data_sinks"] == {"auto_push_on_job_complete": True, "retry_failed_push": 3}

    # Another org (Pro Max too) finds nothing of it: every sink page is a 404.
    intruder = stack.create_org(plan="PRO_MAX", name="Intruder")
    other = await browser.new_context(base_url=stack.api_url)
    try:
        theirs = await other.new_page()
        await sign_in(theirs, intruder["apiToken"])
        for path in (
            f"/app/agents/sinks/{sink}",
            f"/app/agents/sinks/{sink}/edit",
            f"/app/agents/sinks/{sink}/delete",
            f"/app/agents/{agent_id}/sinks/new",
        ):
            response = await theirs.goto(path)
            assert response is not None and response.status == 404, path
        await theirs.goto("/app/agents")
        await expect(theirs.locator("main")).not_to_contain_text(sink)

        # A PRO org is told why it has no sinks, as the events picker explains gated events.
        pro = stack.create_org(plan="PRO", name="Pro org")
        await other.clear_cookies()
        await sign_in(theirs, pro["apiToken"])
        await api_agent(api, pro, "Pro agent")
        await nav(theirs, "Agent sinks")
        await expect(theirs.locator("#plan-gate")).to_contain_text(
            "need the PRO_MAX plan or above (you are on PRO)"
        )
        await expect(
            theirs.get_by_role("link", name=re.compile("^Add a results sink"))
        ).to_have_count(0)
        await shot(theirs, "35-agent-sinks-plan-gated")
        pro_agent = (
            await theirs.locator("section.card h2 code").first.text_content() or ""
        ).strip()
        response = await theirs.goto(f"/app/agents/{pro_agent}/sinks/new")
        assert response is not None and response.status == 403
        await expect(theirs.get_by_role("alert")).to_contain_text("PRO_MAX plan")
    finally:
        await other.close()
