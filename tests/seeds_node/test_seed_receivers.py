"""Seed 004's Express, Next.js (app router) and Fastify receivers, copied from the page, as real
Node processes with the SDK's `npm pack` tarball, receiving REAL deliveries of report jobs from
the real stack (api, dispatcher, senders, RabbitMQ, PostgreSQL).

Each one answers 200 to a genuine delivery (the delivery SUCCEEDS on its first attempt) and 401
to the same delivery with its body tampered with, with a stale timestamp, or unsigned. The
forgeries are made from a genuine delivery that the recording receiver caught; the stale one is
re-signed with the real secret and an old timestamp, beside a control re-signed with the same
secret and a fresh timestamp that must pass, so the 401 is the timestamp's alone.
"""

from __future__ import annotations

import time

import httpx
import pytest

from harness.receiver import ReceivedRequest, Receiver
from tests.e2e.conftest import auth
from tests.seeds_node.conftest import WEBHOOK_PATH, SeedOrg
from tests.seeds_node.reports_api import (
    SECRET,
    complete_job,
    create_job,
    fail_job,
    job_delivery,
    mappa_signature,
    reveal_secret,
)

RECEIVERS = ["express", "fastify", "next"]
STALE_S = 600  # the page's tolerance is 300 s (Express) or the SDK's default, also 300 s


async def caught_delivery(
    client: httpx.AsyncClient, org: dict[str, str], receiver: Receiver, path: str
) -> tuple[ReceivedRequest, str]:
    """A genuine report.completed delivery, caught by the recording receiver; its reportId."""
    job = await create_job(client, org, receiver.url(path))
    report_id = await complete_job(client, org, job)
    [request] = await receiver.wait_for(path, 1, timeout=40)
    return request, report_id


def headers_of(request: ReceivedRequest, **changes: str | None) -> dict[str, str]:
    """The delivery's own headers (mappa-signature, content-type, …), as replayed."""
    keep = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    for name, value in changes.items():
        keep = {k: v for k, v in keep.items() if k.lower() != name}
        if value is not None:
            keep[name] = value
    return keep


@pytest.mark.e2e
@pytest.mark.parametrize("kind", RECEIVERS)
async def test_seed_receiver_takes_genuine_deliveries_and_refuses_forgeries(
    kind: str, seed_org: SeedOrg, receiver: Receiver
) -> None:
    api_client, org = seed_org.api, seed_org.org
    secret = await reveal_secret(api_client, org)
    node = seed_org.start_receiver(kind, secret)
    url = node.url(WEBHOOK_PATH)

    # hookpost → the seed's receiver: 200 to the first attempt.
    job = await create_job(api_client, org, url)
    report_id = await complete_job(api_client, org, job)
    delivered = await job_delivery(seed_org.db, job, "SUCCEEDED")
    assert delivered["attempt_count"] == 1, f"{kind} refused a genuine delivery:\n{node.log_tail()}"

    # The same receiver, given a genuine delivery and forgeries of it.
    request, caught_report = await caught_delivery(api_client, org, receiver, f"/{kind}")
    assert request.json()["data"]["reportId"] == caught_report
    signature = request.headers.get("mappa-signature") or request.headers["Mappa-Signature"]
    tampered = request.body.replace(caught_report.encode(), report_id.encode())
    assert tampered != request.body
    now = int(time.time())
    async with httpx.AsyncClient(timeout=10) as client:

        async def answer(body: bytes, **changes: str | None) -> int:
            response = await client.post(url, content=body, headers=headers_of(request, **changes))
            return response.status_code

        assert await answer(request.body) == 200, "the genuine delivery, replayed at once"
        assert await answer(tampered) == 401, "a tampered body"
        fresh = mappa_signature(request.body, secret, now)
        assert await answer(request.body, **{"mappa-signature": fresh}) == 200, "re-signed now"
        stale = mappa_signature(request.body, secret, now - STALE_S)
        assert await answer(request.body, **{"mappa-signature": stale}) == 401, "a stale timestamp"
        assert await answer(request.body, **{"mappa-signature": None}) == 401, "no signature"
        wrong = mappa_signature(request.body, secret + "x", now)
        assert await answer(request.body, **{"mappa-signature": wrong}) == 401, "another secret"
    assert signature.startswith("t=") and ",v1=" in signature


@pytest.mark.e2e
async def test_express_receiver_handles_both_events_as_the_page_says(seed_org: SeedOrg) -> None:
    """report.completed logs the reportId, report.failed the job's error: the handler saw the
    parsed, typed event (parseEvent), not only a verified body."""
    api_client, org = seed_org.api, seed_org.org
    node = seed_org.start_receiver("express", await reveal_secret(api_client, org))
    url = node.url(WEBHOOK_PATH)

    done, failed = await create_job(api_client, org, url), await create_job(api_client, org, url)
    report_id = await complete_job(api_client, org, done)
    await fail_job(api_client, org, failed, "target_not_found", "Could not identify target speaker")
    for job in (done, failed):
        assert (await job_delivery(seed_org.db, job, "SUCCEEDED"))["attempt_count"] == 1
    log = node.log_tail(200)
    assert f"Report {report_id} ready!" in log, log
    assert "Job failed:" in log and "target_not_found" in log, log


@pytest.mark.e2e
async def test_a_receiver_with_another_secret_refuses_every_attempt_until_dead(
    seed_org: SeedOrg,
) -> None:
    """The page's receiver with a secret that is not the org's answers 401 to hookpost's own
    deliveries, and hookpost retries them as the page says: 5 attempts, then abandoned."""
    api_client, org = seed_org.api, seed_org.org
    node = seed_org.start_receiver("express", "whsec_" + "0" * 43)
    job = await create_job(api_client, org, node.url(WEBHOOK_PATH))
    await complete_job(api_client, org, job)
    dead = await job_delivery(seed_org.db, job, "DEAD", timeout=60)
    assert dead["attempt_count"] == 5
    assert node.log_tail(400).count("Webhook verification failed") == 5


@pytest.mark.e2e
async def test_during_a_secret_rotation_receivers_with_either_secret_take_the_delivery(
    seed_org: SeedOrg, receiver: Receiver
) -> None:
    """Team Settings' rotation keeps the old secret signing for a grace window: a delivery then
    carries two v1 signatures, and the page's receiver verifies with the old secret (not yet
    redeployed) as well as with the new one."""
    api_client, org = seed_org.api, seed_org.org
    old = await reveal_secret(api_client, org)
    rotated = await api_client.post(
        f"{SECRET}/rotate", json={"gracePeriodSeconds": 600}, headers=auth(org)
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["webhookSecret"]
    assert new != old
    receivers = [seed_org.start_receiver("express", s) for s in (old, new)]

    request, _ = await caught_delivery(api_client, org, receiver, "/rotation")
    signature = request.headers.get("mappa-signature") or request.headers["Mappa-Signature"]
    assert signature.count("v1=") == 2, signature
    for node in receivers:
        job = await create_job(api_client, org, node.url(WEBHOOK_PATH))
        await complete_job(api_client, org, job)
        assert (await job_delivery(seed_org.db, job, "SUCCEEDED"))["attempt_count"] == 1
