"""/metrics of every service, scraped over HTTP after a run whose outcomes are known.

5 events through the api: 3 delivered at once, 1 delivered on its second attempt, 1 DEAD
after four; and a 6th for an organization over its backpressure limit, dropped. Every
counter below must match that run exactly (the services are this module's own processes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.metrics import scrape
from harness.process import Process
from harness.receiver import Receiver
from harness.waiting import eventually
from tests.observability.conftest import ObservedStack, observed_stack
from tests.support.factories import deliveries_of, insert_pending_delivery, make_endpoint

pytestmark = pytest.mark.e2e

PENDING_LIMIT = 3


@pytest.fixture(scope="module")
async def metrics_stack(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[ObservedStack]:
    # 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: DEAD after four attempts in ~5 s.
    env = {
        **test_env,
        "HOOKPOST_RETRY_DELAY_SCALE": "0.002",
        "HOOKPOST_BACKPRESSURE_PENDING_LIMIT": str(PENDING_LIMIT),
    }
    async with observed_stack(env, "obs_metrics") as stack:
        yield stack


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(proc: Process) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(scrape(proc)):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def test_counts_on_every_services_metrics_match_the_run(
    metrics_stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    stack = metrics_stack
    events: dict[str, list[str]] = {"ok": [], "flaky": [], "dead": [], "dropped": []}
    scripts = {"ok": [200], "flaky": [500, 200], "dead": [500], "dropped": [200]}
    orgs = {}
    for name, statuses in scripts.items():
        org = await make_org()
        orgs[name] = org
        endpoint = await make_endpoint(
            db_pool, org.organizationId, receiver.script(f"/{name}", statuses), ["export.ready"]
        )
        if name == "dropped":  # over its limit: PENDING deliveries no queue will ever send
            for _ in range(PENDING_LIMIT + 1):
                await insert_pending_delivery(db_pool, org.organizationId, endpoint.id)
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
            for name, count in (("ok", 3), ("flaky", 1), ("dead", 1), ("dropped", 1)):
                for _ in range(count):
                    response = await client.post(
                        "/api/v1/events",
                        json={"type": "export.ready", "data": {"exportFileId": name}},
                        headers={"Authorization": f"Bearer {orgs[name].apiToken}"},
                    )
                    assert response.status_code == 202, response.text
                    events[name].append(response.json()["eventId"])

        async def final_statuses() -> list[str]:
            statuses = []
            for name in ("ok", "flaky", "dead"):
                for event_id in events[name]:
                    rows = await deliveries_of(db_pool, event_id)
                    statuses.append(rows[0]["status"] if rows else "none")
            return statuses

        assert await eventually(
            final_statuses, lambda s: "PENDING" not in s and "none" not in s, timeout=60
        ) == ["SUCCEEDED"] * 4 + ["DEAD"]
        await eventually(
            lambda: db_pool.fetchval(
                "SELECT dispatched_at FROM events WHERE id = $1", events["dropped"][0]
            ),
            lambda dispatched_at: dispatched_at is not None,
        )
        assert len(receiver.on("/ok")) == 3
        assert len(receiver.on("/flaky")) == 2
        assert len(receiver.on("/dead")) == 4
        assert receiver.on("/dropped") == []

        # First attempts are the dispatcher's own (services/dispatcher/first_attempts.py runs
        # the delivery engine, whose series carry service="dispatcher" there); the retries and
        # the DEAD mark are the sender's, the mark a moment after the last attempt (the
        # dead-letter consumer).
        async def sender_samples() -> Samples:
            return samples(stack.sender)

        def engine(found: Samples, service: str, name: str, **labels: str) -> float | None:
            return value(found, f"hookpost_delivery_{name}", service=service, **labels)

        sender = await eventually(
            sender_samples,
            lambda s: engine(s, "sender", "finished_total", status="DEAD") == 1,
        )
        dispatcher = samples(stack.dispatcher)
        # ok 200 ×3, flaky 500, dead 500 here; flaky 200 and dead 500 ×3 in the sender
        for found, service, ok, failed in (
            (dispatcher, "dispatcher", 3, 2),
            (sender, "sender", 1, 3),
        ):
            assert engine(found, service, "attempts_total", outcome="2xx") == ok
            assert engine(found, service, "attempts_total", outcome="5xx") == failed
            for absent in ("3xx", "4xx", "timeout", "connection_error", "refused"):
                assert engine(found, service, "attempts_total", outcome=absent) is None
            assert engine(found, service, "attempt_seconds_count") == ok + failed
            assert engine(found, service, "finished_total", status="FAILED") is None
            other = "sender" if service == "dispatcher" else "dispatcher"
            assert engine(found, other, "attempts_total", outcome="2xx") is None
        assert value(sender, "hookpost_sender_in_flight") == 0
        # each service exports its own series only
        assert not [name for name, _ in dispatcher if name.startswith("hookpost_sender_")]
        assert not [name for name, _ in sender if name.startswith("hookpost_dispatcher_")]
        assert engine(dispatcher, "dispatcher", "event_to_first_attempt_seconds_count") == 5
        assert engine(sender, "sender", "event_to_first_attempt_seconds_count") == 0
        assert engine(dispatcher, "dispatcher", "finished_total", status="SUCCEEDED") == 3
        assert engine(sender, "sender", "finished_total", status="SUCCEEDED") == 1
        # dead: 60 s (here), 300 s and 1800 s tiers; flaky: the 60 s tier once (here)
        assert engine(dispatcher, "dispatcher", "retry_publishes_total", tier="60s") == 2
        assert engine(sender, "sender", "retry_publishes_total", tier="60s") is None
        assert engine(sender, "sender", "retry_publishes_total", tier="300s") == 1
        assert engine(sender, "sender", "retry_publishes_total", tier="1800s") == 1

        assert value(dispatcher, "hookpost_dispatcher_events_total", outcome="dispatched") == 5
        assert value(dispatcher, "hookpost_dispatcher_events_total", outcome="dropped") == 1
        assert value(dispatcher, "hookpost_dispatcher_events_dropped_backpressure_total") == 1
        assert value(dispatcher, "hookpost_dispatcher_first_attempts_total") == 5
        assert value(dispatcher, "hookpost_dispatcher_deliveries_published_total") == 0
        assert value(dispatcher, "hookpost_dispatcher_in_flight") == 0

        api = samples(stack.api)
        assert value(api, "hookpost_api_events_accepted_total", type="export.ready") == 6
        assert value(api, "hookpost_api_events_published_total", path="inline") == 6
        pending_org = orgs["dropped"].organizationId

        async def api_samples() -> Samples:
            return samples(stack.api)

        # DB-derived gauges refresh at most every 5 s.
        api = await eventually(
            api_samples,
            lambda s: (
                value(s, "hookpost_api_pending_deliveries", organization_id=pending_org)
                == PENDING_LIMIT + 1
            ),
            timeout=15,
        )
        for name in ("ok", "flaky", "dead"):  # nothing pending: no series at all
            org_id = orgs[name].organizationId
            assert value(api, "hookpost_api_pending_deliveries", organization_id=org_id) is None
        assert value(api, "hookpost_api_pending_deliveries", organization_id="_other") is not None
        per_org = [k for k in api if k[0] == "hookpost_api_pending_deliveries"]
        assert len(per_org) <= 21  # top 20 organizations + "_other": bounded
        unpublished = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE published_at IS NULL"
        )
        assert value(api, "hookpost_api_outbox_backlog") == unpublished

        # The dead-letter hop continues the DEAD delivery's trace (headers survive the DLX).
        [dead_delivery] = await deliveries_of(db_pool, events["dead"][0])
        spans = await stack.otlp.wait_for(
            lambda spans: any(
                s.name.endswith(".dead process")
                and s.attr("hookpost.delivery_id") == dead_delivery["id"]
                for s in spans
            )
        )
        [server] = [
            s
            for s in spans
            if s.attr("hookpost.event_id") == events["dead"][0] and s.kind == "SERVER"
        ]
        in_trace = stack.otlp.in_trace(server.trace_id)
        [dead_hop] = [s for s in in_trace if s.name.endswith(".dead process")]
        last_retry = [s for s in in_trace if s.name.endswith(".retry publish")]
        assert len(last_retry) == 3  # before attempts 2, 3 and 4
        [to_fourth] = [s for s in last_retry if s.attr("hookpost.next_attempt") == 4]
        assert dead_hop.parent_span_id == to_fourth.span_id  # the message it dead-lettered
        assert len([s for s in in_trace if s.name == "POST"]) == 4

        # No URL, secret or endpoint id in any label of any service.
        for found in (sender, dispatcher, api):
            for _, labels in found:
                for label, label_value in labels:
                    assert label != "endpoint_id" and "://" not in label_value
                    assert "127.0.0.1" not in label_value
    finally:
        await db_pool.execute(
            "DELETE FROM organizations WHERE id = ANY($1::text[])",
            [org.organizationId for org in orgs.values()],
        )
