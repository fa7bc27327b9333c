"""Secrets never leave where they belong: a full run, then every log, metric, response and row.

The api, a dispatcher and a sender run as real subprocesses (on their own broker prefix).
The run creates a subscription and destinations carrying apiKeyValues and `?token=` URL
secrets, rotates signing secrets, replaces a destination with new secrets, and sends events
that succeed, fail to DEAD and fail to connect. Then: no secret in any api response after
the one that created it, in any service's /metrics, in any log line any service wrote, or
in plaintext in any row of any table.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from harness.orgs import create_org
from harness.process import Process, free_port
from harness.receiver import Receiver
from harness.waiting import eventually
from tests.support.stacks import LOG_DIR, Pipeline

SUBS = "/api/v1/webhook-subscriptions"
DESTS = "/api/v1/delivery-destinations"


@pytest.fixture(scope="module")
async def services(test_env: dict[str, str], db_pool: object) -> AsyncIterator[list[Process]]:
    # 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: a failing delivery is DEAD in ~5 s.
    async with Pipeline(test_env, "secrets", HOOKPOST_RETRY_DELAY_SCALE="0.002") as pipe:
        await pipe.stack.start(dispatchers=1, senders=1)
        yield pipe.stack.services()


def new_secret(kind: str) -> str:
    return f"{kind}{secrets.token_hex(16)}"


def leaks(text: str, found_secrets: dict[str, str]) -> list[str]:
    return [name for name, value in found_secrets.items() if value in text]


def secret_forms(name: str, value: str) -> dict[str, str]:
    """A secret and the parts of it a careless log line might print instead."""
    forms = {name: value}
    if value.startswith("whsec_"):
        forms[f"{name} (key part)"] = value.removeprefix("whsec_")
    return forms


async def test_no_secret_escapes_a_full_run(
    services: list[Process], receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    api, _dispatcher, sender = services
    org = await asyncio.to_thread(create_org, api.env, "secrets", "PRO_MAX")
    made: dict[str, str] = {"org api token": org["apiToken"]}
    after_creation: list[tuple[str, httpx.Response]] = []  # responses that may show none

    ok_token, fail_token, fail_token_2, closed_token = (new_secret("tok") for _ in range(4))
    sub_key, dest_key, dest_key_2 = (new_secret("key") for _ in range(3))
    made |= {
        "ok url token": ok_token,
        "fail url token": fail_token,
        "replaced url token": fail_token_2,
        "closed-port url token": closed_token,
        "subscription apiKeyValue": sub_key,
        "destination apiKeyValue": dest_key,
        "replaced apiKeyValue": dest_key_2,
    }
    receiver.script("/fail", [500])
    closed_url = f"http://127.0.0.1:{free_port()}/gone?token={closed_token}"

    headers = {"Authorization": f"Bearer {org['apiToken']}"}
    async with httpx.AsyncClient(base_url=api.url(), headers=headers, timeout=30) as http:
        sub = await http.post(
            SUBS,
            json={
                "webhookUrl": f"{receiver.url('/ok')}?token={ok_token}",
                "events": ["MAPPING_COMPLETED"],
                "apiKeyName": "X-Api-Key",
                "apiKeyValue": sub_key,
            },
        )
        assert sub.status_code == 201, sub.text
        dest = await http.post(
            DESTS, json=destination(f"{receiver.url('/fail')}?t={fail_token}", dest_key)
        )
        closed = await http.post(DESTS, json=destination(closed_url, None))
        assert dest.status_code == 201 and closed.status_code == 201, (dest.text, closed.text)
        for created, plain in ((sub, ok_token), (dest, fail_token), (closed, closed_token)):
            made |= secret_forms(
                f"signing secret of {created.json()['id']}", created.json()["signingSecret"]
            )
            # the create answer shows the signing secret once, and no other secret
            assert leaks(created.text.replace(created.json()["signingSecret"], ""), made) == []
            assert plain not in created.text
        sub_id, dest_id, closed_id = sub.json()["id"], dest.json()["id"], closed.json()["id"]

        rotated_sub = await http.post(f"{SUBS}/{sub_id}/rotate-secret")
        rotated_dest = await http.post(f"{DESTS}/{dest_id}/rotate-secret", json={})
        for rotated in (rotated_sub, rotated_dest):
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["signingSecret"]
            made |= secret_forms(f"rotated secret of {rotated.json()['id']}", new)
            assert leaks(rotated.text.replace(new, ""), made) == []

        replaced = await http.put(
            f"{DESTS}/{dest_id}",
            json=destination(f"{receiver.url('/fail')}?t={fail_token_2}&x=1", dest_key_2),
        )
        assert replaced.status_code == 200, replaced.text
        after_creation.append(("PUT destination", replaced))

        event = await http.post(
            "/api/v1/events", json={"type": "mapping.completed", "data": {"mappingJobId": "j"}}
        )
        assert event.status_code == 202, event.text
        event_id = event.json()["eventId"]

        # the secrets were really in use: the receiver got the key and the token
        [delivered] = await receiver.wait_for("/ok", 1, timeout=60)
        assert delivered.headers["X-Api-Key"] == sub_key
        rows = await eventually(
            lambda: db_pool.fetch(
                "SELECT endpoint_id, status FROM deliveries WHERE event_id = $1", event_id
            ),
            lambda rows: len(rows) == 3 and all(r["status"] != "PENDING" for r in rows),
            timeout=90,
        )
        assert {r["endpoint_id"]: r["status"] for r in rows} == {
            sub_id: "SUCCEEDED",
            dest_id: "DEAD",
            closed_id: "DEAD",
        }
        assert receiver.on("/fail")[0].headers["X-Api-Key"] == dest_key_2

        # The other doors' secrets: an agent sink's own secret, an export webhook's URL
        # token and signing secret, a job webhook's URL token, the org webhook secret.
        sink_secret = new_secret("sink")
        export_token, job_token = new_secret("tok"), new_secret("tok")
        made |= {"sink secret": sink_secret, "export url token": export_token}
        made |= {"job url token": job_token}
        agent_id = (await http.post("/api/v1/agents", json={"name": "bi"})).json()["id"]
        rules = {"data_sinks": {"auto_push_on_job_complete": True, "retry_failed_push": 0}}
        assert (await http.put(f"/api/v1/agents/{agent_id}/rules", json=rules)).is_success
        sink = await http.post(
            f"/api/v1/agents/{agent_id}/data-sources",
            json={
                "role": "RESULTS_SINK",
                "type": "HTTPS_WEBHOOK",
                "config": {"url": receiver.url("/sink"), "authScheme": "Bearer"},
                "secret": {"value": sink_secret},
                "format": "JSON",
            },
        )
        assert sink.status_code == 201, sink.text
        after_creation.append(("create sink", sink))  # the user's own secret: never shown
        sink_id = sink.json()["id"]
        export_hook = await http.post(
            "/api/v1/export-webhooks",
            json={"url": f"{receiver.url('/export')}?secret={export_token}", "active": True},
        )
        assert export_hook.status_code == 201, export_hook.text
        made |= secret_forms("export signing secret", export_hook.json()["signingSecret"])
        assert export_token not in export_hook.text
        org_secret = await http.post("/api/v1/organization/webhook-secret/rotate")
        assert org_secret.status_code == 200, org_secret.text
        made |= secret_forms("org webhook secret", org_secret.json()["webhookSecret"])
        job = await http.post(
            "/api/v1/mapping-jobs",
            json={"agentId": agent_id, "webhook": {"url": f"{receiver.url('/job')}?k={job_token}"}},
        )
        assert job.status_code == 201, job.text
        after_creation.append(("create job", job))
        job_id = job.json()["jobId"]
        completed = await http.post(
            f"/api/v1/mapping-jobs/{job_id}/complete",
            json={"stats": {"total": 1, "matched": 1, "unmatched": 0}, "results": [{"r": 1}]},
        )
        assert completed.status_code == 200, completed.text
        # in use: the sink got its bearer token, the export and job URLs their tokens
        [pushed] = await receiver.wait_for("/sink", 1, timeout=60)
        assert pushed.headers["Authorization"] == f"Bearer {sink_secret}"
        [exported] = await receiver.wait_for("/export", 1, timeout=60)
        assert exported.query == f"secret={export_token}"
        [job_hook] = await receiver.wait_for("/job", 1, timeout=60)
        assert job_hook.query == f"k={job_token}"

        # A report job (seed 004): its webhook URL's token and its media URL's token.
        report_token, media_token = new_secret("tok"), new_secret("tok")
        made |= {"report url token": report_token, "report media token": media_token}
        report_job = await http.post(
            "/api/v1/reports/jobs",
            json={
                "url": f"https://example.com/call.mp3?sig={media_token}",
                "output": {"template": "t"},
                "target": {"strategy": "dominant"},
                "webhook": {"url": f"{receiver.url('/report')}?k={report_token}"},
            },
        )
        assert report_job.status_code == 202, report_job.text
        after_creation.append(("create report job", report_job))
        report_job_id = report_job.json()["jobId"]
        report_done = await http.post(
            f"/api/v1/reports/jobs/{report_job_id}/complete", json={"report": {"markdown": "m"}}
        )
        assert report_done.status_code == 200, report_done.text
        [report_hook] = await receiver.wait_for("/report", 1, timeout=60)
        assert report_hook.query == f"k={report_token}"
        after_creation.append(
            ("get report job", await http.get(f"/api/v1/reports/jobs/{report_job_id}"))
        )

        for name, path in [
            ("list sinks", f"/api/v1/agents/{agent_id}/data-sources"),
            ("get sink", f"/api/v1/agents/{agent_id}/data-sources/{sink_id}"),
            ("sink syncs", f"/api/v1/agents/{agent_id}/data-sources/{sink_id}/syncs"),
            ("list export webhooks", "/api/v1/export-webhooks"),
            ("get job", f"/api/v1/mapping-jobs/{job_id}"),
            ("org webhook secret", "/api/v1/organization/webhook-secret"),
            ("list subscriptions", SUBS),
            ("get subscription", f"{SUBS}/{sub_id}"),
            ("subscription deliveries", f"{SUBS}/{sub_id}/deliveries"),
            ("list destinations", DESTS),
            ("get destination", f"{DESTS}/{dest_id}"),
            ("destination deliveries", f"{DESTS}/{dest_id}/deliveries"),
            ("closed destination deliveries", f"{DESTS}/{closed_id}/deliveries"),
            ("event", f"/api/v1/events/{event_id}"),
            ("audit log", "/api/v1/audit-log"),
        ]:
            response = await http.get(path)
            assert response.status_code == 200, (name, response.text)
            after_creation.append((name, response))
        # failed attempts were recorded with errors (and those are checked too)
        failed = (await http.get(f"{DESTS}/{closed_id}/deliveries")).json()["deliveries"][0]
        assert failed["attempts"] and all(a["error"] for a in failed["attempts"])

    for name, response in after_creation:
        assert leaks(response.text, made) == [], f"{name} shows {leaks(response.text, made)}"

    async with httpx.AsyncClient(timeout=10) as plain:
        pages = [(service, (await plain.get(service.url("/metrics"))).text) for service in services]
    for service, metrics in pages:
        assert "hookpost" in metrics or "python_" in metrics  # a real metrics page
        assert leaks(metrics, made) == [], f"{service.name} /metrics shows {leaks(metrics, made)}"

    for service in reversed(services):  # stopped: every line they will write is on disk
        await asyncio.to_thread(service.stop)
    logs = {path: path.read_text(errors="replace") for path in LOG_DIR.glob("*.log")}
    ours = [service.log_path for service in services]
    assert all(path in logs and logs[path] for path in ours)
    # the logs hold the run (so the grep below reads something): failures, with their ids
    assert "attempt failed" in logs[sender.log_path] and dest_id in logs[sender.log_path]
    for path, text in logs.items():
        assert leaks(text, made) == [], f"{path.name} shows {leaks(text, made)}"

    await assert_no_plaintext_in_any_table(db_pool, made)


async def assert_no_plaintext_in_any_table(db_pool: asyncpg.Pool, made: dict[str, str]) -> None:
    tables = await db_pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    assert {"endpoints", "delivery_attempts", "audit_log"} <= {t["tablename"] for t in tables}
    for table in tables:
        name = table["tablename"]
        rows = await db_pool.fetch(f'SELECT t::text AS row FROM "{name}" t')
        text = "\n".join(r["row"] for r in rows)
        assert leaks(text, made) == [], f"table {name} holds {leaks(text, made)} in plaintext"


def destination(url: str, api_key_value: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "WEBHOOK", "webhookUrl": url, "events": ["mapping.completed"]}
    if api_key_value is not None:
        body |= {"apiKeyName": "X-Api-Key", "apiKeyValue": api_key_value}
    return body
