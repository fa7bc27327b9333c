"""Every example of the five seed pages, run as a user who copied it would run it, against
the real api, dispatcher and senders: each curl command is read from the page's own text
(tests/seeds/pages) and run by the real curl with only the host, the token and the page's
placeholders substituted; what comes back is checked against what the page says and the JSON
it shows; what is delivered is verified the way the page tells receivers to.

Seed 004's receivers: the Python one is tests/seeds/receivers/mappa_receiver.py (here); the
page's Node ones (Express, Next.js, Fastify) run in the Node SDK's tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from libs.sdk.webhooks import verify_signature
from tests.e2e.conftest import auth
from tests.seeds.page import PAGES, curl_commands, json_examples, run_curl, same_shape, text
from tests.support.factories import MAPPING_RESULTS as RESULTS

P000, P001, P002 = (
    "000-export-webhooks.txt",
    "001-delivery-destinations.txt",
    "002-webhook-subscriptions-api.txt",
)
P003, P004 = "003-agent-outbound-sink.txt", "004-job-webhooks-and-sdk.txt"
MASKED = re.compile(r"^whsec_••••.{4}$")


def curl(
    page: str, n: int, org: dict, stack: Stack, receiver: Receiver, resource_id: str | None = None
):
    return run_curl(
        curl_commands(text(page))[n],
        api=stack.api_url,
        token=org["apiToken"],
        receiver=receiver.url(""),
        resource_id=resource_id,
    )


def page_quick_summary_verify(request: ReceivedRequest, secret: str) -> bool:
    """Seed 001's "Quick summary": parse t= and v1= from X-Webhook-Signature, reject a
    timestamp more than ±5 minutes off, then HMAC_SHA256(secret, "{t}.{raw_body}") in
    constant time (any v1 may match: two are sent during a rotation window)."""
    parts = [p.split("=", 1) for p in request.headers["X-Webhook-Signature"].split(",")]
    t = next(v for k, v in parts if k == "t")
    if abs(time.time() - int(t)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + request.body, hashlib.sha256)
    return any(hmac.compare_digest(expected.hexdigest(), v) for k, v in parts if k == "v1")


async def complete_a_job(client: httpx.AsyncClient, org: dict, agent_id: str | None = None) -> str:
    body = {"agentId": agent_id} if agent_id else {}
    job = await client.post("/api/v1/mapping-jobs", headers=auth(org), json=body)
    assert job.status_code == 201, job.text
    job_id = job.json()["jobId"]
    done = await client.post(
        f"/api/v1/mapping-jobs/{job_id}/complete",
        headers=auth(org),
        json={"stats": {"total": 2, "matched": 1, "unmatched": 1}, "results": RESULTS},
    )
    assert done.status_code == 200, done.text
    return str(job_id)


def test_the_pages_here_are_the_product_documents_verbatim() -> None:
    """tests/seeds/pages are byte copies of the product documents (SPEC: ../shared/seeds),
    so the tests read what users read; where those are checked out beside the repository
    (as in this workplace), any edit to either side fails here until both agree."""
    names = sorted(path.name for path in PAGES.iterdir())
    assert names == [P000, P001, P002, P003, P004]
    upstream = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
    if upstream.is_dir():
        for name in names:
            assert (upstream / name).read_bytes() == (PAGES / name).read_bytes(), name


def test_every_curl_of_every_page_is_run_here() -> None:
    """A page that gains or loses a curl command fails here until a test runs it."""
    counts = {page: len(curl_commands(text(page))) for page in (P000, P001, P002, P003, P004)}
    assert counts == {P000: 0, P001: 2, P002: 4, P003: 1, P004: 1}


async def test_seed_001_delivery_destinations(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")  # the page subscribes to mapping.error.resolved
    page_created, page_envelope = json_examples(text(P001))

    created = curl(P001, 0, org, stack, receiver)
    assert created.status == 201, created.body
    body = created.json()
    assert same_shape(page_created, body) == []
    assert body["id"].startswith("dest_")
    for field in ("type", "name", "events", "status"):
        assert body[field] == page_created[field]
    assert body["webhookUrl"] == receiver.url("/hooks/mapping")
    assert body["signingSecret"].startswith("whsec_") and MASKED.match(body["signingSecretMasked"])
    datetime.fromisoformat(body["createdAt"])
    secret = body["signingSecret"]

    # "every time a mapping job completes": the page's headers and envelope, verified.
    await complete_a_job(api_client, org)
    [delivery] = await receiver.wait_for("/hooks/mapping", 1, timeout=30)
    envelope = delivery.json()
    assert set(envelope) == set(page_envelope)
    assert set(page_envelope["data"]) <= set(envelope["data"])
    assert envelope["type"] == "mapping.completed" and envelope["eventId"].startswith("evt_")
    assert delivery.headers["X-Webhook-Event"] == "mapping.completed"
    assert delivery.headers["X-Webhook-Delivery"] == envelope["id"] and envelope["id"].startswith(
        "del_"
    )
    assert delivery.headers["Content-Type"] == "application/json"
    assert page_quick_summary_verify(delivery, secret)
    verify_signature(delivery.body, delivery.headers, secret)

    # Rotating: the new secret once; "both the old and new secrets are accepted".
    rotated = curl(P001, 1, org, stack, receiver, resource_id=body["id"])
    assert rotated.status == 200, rotated.body
    new = rotated.json()["signingSecret"]
    assert new.startswith("whsec_") and new != secret
    test = await api_client.post(
        f"/api/v1/delivery-destinations/{body['id']}/test", headers=auth(org)
    )
    assert test.status_code in (200, 202), test.text
    [_, after] = await receiver.wait_for("/hooks/mapping", 2, timeout=30)
    assert page_quick_summary_verify(after, secret) and page_quick_summary_verify(after, new)


async def test_seed_002_webhook_subscriptions(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    page_created, page_rotated, page_test = json_examples(text(P002))
    free = stack.create_org(plan="FREE")
    refused = curl(P002, 0, free, stack, receiver)
    assert refused.status == 403, refused.body
    error = refused.json()["error"]
    assert error["code"] == "FORBIDDEN"
    assert set(page_created["events"]) <= set(error["events"])  # "the offending event names"

    org = stack.create_org(plan="PRO")
    created = curl(P002, 0, org, stack, receiver)
    assert created.status == 201, created.body
    sub = created.json()
    assert same_shape(page_created, sub) == []
    assert sub["id"].startswith("sub_") and sub["organizationId"] == org["organizationId"]
    for field in ("name", "events", "status", "deactivatedReason"):
        assert sub[field] == page_created[field]
    assert sub["webhookUrl"] == receiver.url("/webhooks/mapping")
    assert sub["signingSecret"].startswith("whsec_") and MASKED.match(sub["signingSecretMasked"])

    listed = curl(P002, 1, org, stack, receiver)
    assert listed.status == 200, listed.body
    [item] = [s for s in listed.json()["subscriptions"] if s["id"] == sub["id"]]
    assert "signingSecret" not in item and item["signingSecretMasked"] == sub["signingSecretMasked"]
    assert curl(P002, 1, {"apiToken": "not-a-token"}, stack, receiver).status == 401

    rotated = curl(P002, 2, org, stack, receiver, resource_id=sub["id"])
    assert rotated.status == 200, rotated.body
    assert same_shape(page_rotated, rotated.json()) == []
    assert rotated.json()["id"] == sub["id"]
    new = rotated.json()["signingSecret"]

    tested = curl(P002, 3, org, stack, receiver, resource_id=sub["id"])
    assert tested.status in (200, 202), tested.body
    assert set(tested.json()) == set(page_test) and tested.json()["deliveryId"].startswith("del_")
    [delivery] = await receiver.wait_for("/webhooks/mapping", 1, timeout=30)
    assert delivery.json()["type"] == "webhook.test"
    assert page_quick_summary_verify(delivery, new)
    assert not page_quick_summary_verify(delivery, sub["signingSecret"])  # "invalidate the old one"
    # "Check /deliveries for the result within ~30 seconds."
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = (
            await api_client.get(
                f"/api/v1/webhook-subscriptions/{sub['id']}/deliveries", headers=auth(org)
            )
        ).json()["deliveries"]
        if rows and rows[0]["status"] == "SUCCEEDED":
            break
        await asyncio.sleep(0.2)
    assert rows and rows[0]["status"] == "SUCCEEDED"

    # "Quota: 10 active subscriptions per organization" — subscriptions only.
    for _ in range(9):
        assert curl(P002, 0, org, stack, receiver).status == 201
    over = curl(P002, 0, org, stack, receiver)
    assert over.status == 400 and over.json()["error"]["code"] == "BAD_REQUEST"
    assert "quota" in over.json()["error"]["message"]
    assert curl(P001, 0, org, stack, receiver).status == 201  # destinations have their own


async def test_seed_003_agent_results_sink(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    page_rules, page_payload = json_examples(text(P003))
    command = curl_commands(text(P003))[0]
    assert "Content-Type" not in command  # curl -d declares form data: it must still work
    org = stack.create_org(plan="PRO_MAX")  # "Prerequisites: Pro Max workspace"
    agent = await api_client.post("/api/v1/agents", headers=auth(org), json={"name": "BI agent"})
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]

    created = curl(P003, 0, org, stack, receiver, resource_id=agent_id)
    assert created.status == 201, created.body
    sink_id = created.json()["id"]
    secret = "..."  # the page's "secret": {"value": "..."}, exactly

    def page_node_verify(request: ReceivedRequest) -> bool:
        """The page's "HMAC verification (Node)", in Python."""
        sig = request.headers["X-MT-Signature"].replace("sha256=", "")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig.encode(), expected.encode())

    # "Click Test — we send a synthetic payload signed with your secret."
    test = await api_client.post(
        f"/api/v1/agents/{agent_id}/data-sources/{sink_id}/test", headers=auth(org)
    )
    assert test.status_code in (200, 202), test.text
    [synthetic] = await receiver.wait_for("/mapping-results", 1, timeout=30)
    assert synthetic.headers["X-MT-Signature"].startswith("sha256=")
    assert page_node_verify(synthetic)

    # "Enable auto-push in rules" with the page's JSON, then a finished job pushes.
    rules = await api_client.put(
        f"/api/v1/agents/{agent_id}/rules", headers=auth(org), json=page_rules
    )
    assert rules.status_code == 200, rules.text
    job_id = await complete_a_job(api_client, org, agent_id)
    [_, pushed] = await receiver.wait_for("/mapping-results", 2, timeout=30)
    payload = pushed.json()
    assert set(payload) == set(page_payload)
    assert payload["jobId"] == job_id and payload["agentId"] == agent_id
    assert set(payload["stats"]) == set(page_payload["stats"])
    assert [set(row) for row in payload["results"]] == [set(r) for r in page_payload["results"]]
    assert page_node_verify(pushed)


async def test_seed_000_export_webhooks(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    """Seed 000 has no curl; each call it describes, in its words, with its example URL's
    secret token (the page's `?secret=abc123`, host substituted)."""
    page = text(P000)
    assert "https://your-server.example.com/webhooks/mapping-export?secret=abc123" in page
    org = stack.create_org(plan="FREE")
    hooks, headers = "/api/v1/export-webhooks", auth(org)
    url = receiver.url("/webhooks/mapping-export") + "?secret=abc123"

    # "Send a POST request to /api/v1/export-webhooks with your endpoint URL. Set active to
    # true" — "id — you need it to update or delete this webhook later."
    created = await api_client.post(hooks, headers=headers, json={"url": url, "active": True})
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    # "Pass activeOnly=true to filter to enabled endpoints only."
    listed = await api_client.get(hooks, headers=headers, params={"activeOnly": "true"})
    assert [w["id"] for w in listed.json()["webhooks"]] == [hook_id]
    # "Set the file format ... Send a PUT request to /api/v1/export-format."
    fmt = await api_client.put("/api/v1/export-format", headers=headers, json={"format": "JSON"})
    assert fmt.status_code == 200, fmt.text

    # "When a mapping job completes, Mapping.Travel sends a POST request to each active
    # webhook URL ... a download URL, the associated mapping job ID, file format, and
    # metadata such as file size and row count." The URL's token arrives intact.
    job_id = await complete_a_job(api_client, org)
    [delivery] = await receiver.wait_for("/webhooks/mapping-export", 1, timeout=30)
    assert delivery.query == "secret=abc123"
    data = delivery.json()["data"]
    assert data["mappingJobId"] == job_id and data["format"] == "JSON"
    assert data["rowCount"] == 2 and data["fileSize"] > 0
    link = urlsplit(data["downloadUrl"])  # HOOKPOST_PUBLIC_BASE_URL is not this test's api
    download = await api_client.get(f"{link.path}?{link.query}")
    assert download.status_code == 200 and len(download.content) == data["fileSize"]

    # "You can disable a webhook without deleting it by setting active to false."
    off = await api_client.put(f"{hooks}/{hook_id}", headers=headers, json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False, off.text
    listed = await api_client.get(hooks, headers=headers, params={"activeOnly": "true"})
    assert listed.json()["webhooks"] == []
    # A job completed now has no active export webhook: no export is even produced.
    later = await complete_a_job(api_client, org)
    exported = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'export.ready' AND data ->> 'mappingJobId' = $1",
        later,
    )
    assert exported == 0
    # "404 Not Found." for another org's webhook (the page's last words).
    other = stack.create_org(plan="FREE")
    gone = await api_client.put(f"{hooks}/{hook_id}", headers=auth(other), json={"active": True})
    assert gone.status_code == 404
    deleted = await api_client.delete(f"{hooks}/{hook_id}", headers=headers)
    assert deleted.status_code == 204
