"""The chaos harness's accounting (chaos/verify.py): a checker that cannot see a loss is worse
than none, so each kind of loss, stuck work and inconsistency is planted and must be found,
and the rows are read from a real database exactly as `make chaos` reads them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import asyncpg

from chaos.verify import DeliveryRow, EndpointRow, EventRow, Post, Report, account, read_rows
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from tests.support.factories import event_message, insert_event, make_endpoint

MC, MF, MER = "mapping.completed", "mapping.failed", "mapping.error.resolved"


def endpoint(eid: str, org: str, events: tuple[str, ...], *, active: bool = True) -> EndpointRow:
    return EndpointRow(eid, org, EndpointKind.DESTINATION.value, events, active, f"/ok/{eid}")


def succeeded(event: str, ep: str, attempts: int = 1) -> DeliveryRow:
    return DeliveryRow(event, ep, "SUCCEEDED", attempts, attempts, True, True, 200)


def dead(event: str, ep: str, attempts: int = 4) -> DeliveryRow:
    return DeliveryRow(event, ep, "DEAD", attempts, attempts, False, False, 500)


# org-a (PRO): ep-1 takes MC and MF, ep-2 only MF, ep-3 is INACTIVE.
# org-b (FREE): ep-4 takes MC and MER, but MER is not in FREE's plan.
ENDPOINTS = [
    endpoint("ep-1", "org-a", (MC, MF)),
    endpoint("ep-2", "org-a", (MF,)),
    endpoint("ep-3", "org-a", (MC,), active=False),
    endpoint("ep-4", "org-b", (MC, MER)),
]
PLANS = {"org-a": "PRO", "org-b": "FREE"}
EVENTS = [
    EventRow("e1", "org-a", MC, True),  # → ep-1
    EventRow("e2", "org-a", MF, True),  # → ep-1, ep-2
    EventRow("e3", "org-b", MC, True),  # → ep-4
    EventRow("e4", "org-b", MER, True),  # → nothing: the plan does not allow it
]
DELIVERIES = [
    succeeded("e1", "ep-1"),
    succeeded("e2", "ep-1", attempts=2),
    dead("e2", "ep-2"),
    succeeded("e3", "ep-4"),
]
POSTS = [
    Post("/ok/ep-1", "e1", 200),
    Post("/ok/ep-1", "e1", 200),  # a re-POST nobody recorded: a duplicate
    Post("/ok/ep-1", "e2", 500),
    Post("/ok/ep-1", "e2", 200),
    *[Post("/ok/ep-2", "e2", 500)] * 4,
    Post("/ok/ep-4", "e3", 200),
]


def run(**changes: object) -> Report:
    data: dict[str, object] = {
        "accepted": ["e1", "e2", "e3", "e4"],
        "events": EVENTS,
        "endpoints": ENDPOINTS,
        "plans": PLANS,
        "deliveries": DELIVERIES,
        "posts": POSTS,
    }
    data.update(changes)
    return account(**data)  # type: ignore[arg-type]


def test_a_clean_run_counts_everything_and_flags_nothing() -> None:
    report = run()
    assert report.ok, (report.problems, dict(report.examples))
    assert (report.accepted, report.events, report.expected_deliveries) == (4, 4, 4)
    assert report.by_status == {"SUCCEEDED": 3, "DEAD": 1}
    assert (report.lost, report.stuck, report.inconsistent) == (0, 0, 0)
    assert report.duplicate_posts == 1  # e1 → ep-1: two POSTs, one attempt recorded
    assert report.duplicate_successes == 1  # …and both were answered 2xx
    assert report.duplicate_success_examples == ["e1 → /ok/ep-1"]


def test_every_kind_of_loss_is_counted() -> None:
    no_row = run(deliveries=DELIVERIES[1:])
    assert no_row.lost == 1 and no_row.problems == {"no delivery row": 1}

    never_posted = run(posts=[p for p in POSTS if p.path != "/ok/ep-4"])
    assert never_posted.lost == 1 and never_posted.problems == {"never POSTed": 1}

    no_2xx = run(posts=[p for p in POSTS if p.event_id != "e1"] + [Post("/ok/ep-1", "e1", 500)])
    assert no_2xx.problems == {"SUCCEEDED but never answered 2xx": 1}

    not_stored = run(accepted=["e1", "e2", "e3", "e4", "e-vanished"])
    assert not_stored.lost == 1 and not_stored.examples["accepted but not stored"] == ["e-vanished"]
    assert not (no_row.ok or never_posted.ok or no_2xx.ok or not_stored.ok)


def test_pending_deliveries_and_undispatched_events_are_stuck() -> None:
    pending = replace(DELIVERIES[3], status="PENDING")
    report = run(deliveries=[*DELIVERIES[:3], pending])
    assert report.stuck == 1 and report.problems == {"delivery still PENDING": 1}

    undispatched = [*EVENTS[:3], EventRow("e4", "org-b", MER, False)]
    report = run(events=undispatched)
    assert report.stuck == 1 and report.problems == {"event never dispatched": 1}
    assert not report.ok


def test_rows_that_contradict_the_policy_or_the_subscriptions_are_inconsistent() -> None:
    cases = {
        "DEAD before its last attempt": [*DELIVERIES[:2], dead("e2", "ep-2", 3), DELIVERIES[3]],
        "attempt_count ≠ attempts recorded": [
            replace(DELIVERIES[0], attempt_rows=0),
            *DELIVERIES[1:],
        ],
        "SUCCEEDED but its last attempt failed": [
            replace(DELIVERIES[0], last_succeeded=False),
            *DELIVERIES[1:],
        ],
        "FAILED not allowed by the policy": [
            *DELIVERIES[:2],
            replace(DELIVERIES[2], status="FAILED"),
            DELIVERIES[3],
        ],
        # ep-3 is INACTIVE and e4 is not in org-b's plan: neither may get a delivery.
        "delivery for an endpoint that does not match": [
            *DELIVERIES,
            succeeded("e1", "ep-3"),
            succeeded("e4", "ep-4"),
        ],
    }
    for problem, deliveries in cases.items():
        report = run(deliveries=deliveries)
        assert problem in report.problems, (problem, report.problems)
        assert report.inconsistent >= 1 and not report.ok


async def test_rows_are_read_from_postgres_as_the_harness_reads_them(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    org = await make_org(Plan.PRO)
    url = "http://127.0.0.1:9/flaky/read-test?token=secret"
    ep = await make_endpoint(db_pool, org.organizationId, url, [MC, MF])
    event = event_message(org.organizationId, MC)
    await insert_event(db_pool, event)
    await db_pool.execute("UPDATE events SET dispatched_at = now() WHERE id = $1", event.id)
    delivery_id = new_id(IdPrefix.DELIVERY)
    await db_pool.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
        " attempt_count) VALUES ($1, $2, $3, $4, 'SUCCEEDED', 2)",
        delivery_id,
        event.id,
        ep.id,
        org.organizationId,
    )
    for number, (status, ok) in enumerate([(500, False), (200, True)], start=1):
        await db_pool.execute(
            "INSERT INTO delivery_attempts (id, delivery_id, event_id, attempt_number,"
            " attempted_at, duration_ms, http_status, succeeded)"
            " VALUES ($1, $2, $6, $3, now(), 5, $4, $5)",
            new_id(IdPrefix.DELIVERY),
            delivery_id,
            number,
            status,
            ok,
            event.id,
        )

    events, endpoints, plans, deliveries = await read_rows(db_pool)

    assert EventRow(event.id, org.organizationId, MC, True) in events
    mine = [e for e in endpoints if e.id == ep.id]
    assert mine == [
        EndpointRow(ep.id, org.organizationId, "DESTINATION", (MC, MF), True, "/flaky/read-test")
    ]
    assert plans[org.organizationId] == "PRO"
    assert [d for d in deliveries if d.event_id == event.id] == [
        DeliveryRow(event.id, ep.id, "SUCCEEDED", 2, 2, True, True, 200)
    ]
    report = account(
        accepted=[event.id],
        events=[e for e in events if e.organization_id == org.organizationId],
        endpoints=mine,
        plans=plans,
        deliveries=[d for d in deliveries if d.event_id == event.id],
        posts=[Post("/flaky/read-test", event.id, 500), Post("/flaky/read-test", event.id, 200)],
    )
    assert report.ok and report.duplicate_posts == 0, report.problems
