"""The chaos run's accounting: what was accepted, what ended where, what was lost or stuck.

The expectation is computed here, from the endpoints' subscriptions and the org's plan, and
never from the dispatcher's own query, so a dispatcher that forgets an endpoint is caught:

    for every event (every accepted one, and any other the database holds)
      for every endpoint that matches it (same org, ACTIVE, subscribed, allowed by the plan)
        exactly one delivery row, SUCCEEDED / DEAD (or FAILED where the policy says so),
        its attempts recorded (attempt_count = attempt rows ≥ 1, the last one deciding),
        and at least one POST seen by the receiver; a SUCCEEDED one answered 2xx at least once.

lost        accepted but not stored; or no delivery row; or never POSTed; or SUCCEEDED
            without the receiver ever answering 2xx
stuck       delivery still PENDING, or an event never dispatched (PARKED, for an endpoint
            disabled by its answers, is settled: kept unsent until a recover call)
inconsistent  a row for an endpoint that does not match, attempts not as recorded,
            a terminal state the policy does not allow, DEAD before its last attempt
duplicates  POSTs received beyond the attempts recorded (at-least-once: allowed, counted),
            and 2xx answers beyond the first for one delivery
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg

from libs.domain import endpoint_health
from libs.domain.endpoint_kinds import DeliveryStatus
from libs.domain.plan_gate import allows_event
from libs.domain.retry_policy import policy_for_endpoint


@dataclass(frozen=True)
class EventRow:
    id: str
    organization_id: str
    type: str
    dispatched: bool


@dataclass(frozen=True)
class EndpointRow:
    id: str
    organization_id: str
    kind: str
    events: tuple[str, ...]
    active: bool
    path: str  # where the receiver sees its POSTs
    config: dict[str, object] = field(default_factory=dict)
    # INACTIVE by what it answered (410, persistent failure): its events become PARKED
    # deliveries, still expected (libs/domain/endpoint_health.py)
    parks: bool = False


@dataclass(frozen=True)
class DeliveryRow:
    event_id: str
    endpoint_id: str
    status: str
    attempt_count: int
    attempt_rows: int  # rows in delivery_attempts
    last_succeeded: bool | None  # the highest-numbered attempt's outcome
    any_succeeded: bool
    last_http_status: int | None


@dataclass(frozen=True)
class Post:
    """One POST the receiver saw."""

    path: str
    event_id: str | None
    status: int


@dataclass
class Report:
    accepted: int = 0
    events: int = 0  # in the database (accepted ones and any whose answer never arrived)
    expected_deliveries: int = 0
    deliveries: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    posts: int = 0
    lost: int = 0
    stuck: int = 0
    inconsistent: int = 0
    duplicate_posts: int = 0
    duplicate_successes: int = 0
    # Allowed (at-least-once), so not a problem; named so a post-mortem can find them in
    # posts.json and the CSVs of the run.
    duplicate_success_examples: list[str] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def flag(self, what: str, kind: str, example: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        self.problems[kind] += 1
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(example)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.stuck == 0 and self.inconsistent == 0


def _allowed_final(status: str, kind: str, config: dict[str, object]) -> bool:
    if status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD):
        return True
    # FAILED only where a 4xx ends the schedule (agent sinks).
    return status == DeliveryStatus.FAILED and not policy_for_endpoint(kind, config).retry_4xx


def account(
    *,
    accepted: Iterable[str],
    events: Sequence[EventRow],
    endpoints: Sequence[EndpointRow],
    plans: dict[str, str],
    deliveries: Sequence[DeliveryRow],
    posts: Sequence[Post],
) -> Report:
    report = Report()
    accepted_ids = set(accepted)
    report.accepted = len(accepted_ids)
    report.events = len(events)
    report.deliveries = len(deliveries)
    report.posts = len(posts)

    known = {e.id for e in events}
    for event_id in sorted(accepted_ids - known):
        report.flag("lost", "accepted but not stored", event_id)

    by_org: dict[str, list[EndpointRow]] = defaultdict(list)
    for endpoint in endpoints:
        by_org[endpoint.organization_id].append(endpoint)
    endpoint_by_id = {e.id: e for e in endpoints}
    rows = {(d.event_id, d.endpoint_id): d for d in deliveries}
    posts_to: Counter[tuple[str, str | None]] = Counter()
    ok_posts_to: Counter[tuple[str, str | None]] = Counter()
    for post in posts:
        posts_to[post.path, post.event_id] += 1
        if 200 <= post.status < 300:
            ok_posts_to[post.path, post.event_id] += 1

    expected: set[tuple[str, str]] = set()
    for event in events:
        if not event.dispatched:
            report.flag("stuck", "event never dispatched", event.id)
        for endpoint in by_org[event.organization_id]:
            if (
                (endpoint.active or endpoint.parks)
                and event.type in endpoint.events
                and allows_event(plans[event.organization_id], event.type)
            ):
                expected.add((event.id, endpoint.id))
    report.expected_deliveries = len(expected)

    for key in sorted(rows.keys() - expected):
        report.flag("inconsistent", "delivery for an endpoint that does not match", str(key))

    for event_id, endpoint_id in sorted(expected):
        endpoint = endpoint_by_id[endpoint_id]
        where = f"{event_id} → {endpoint.path}"
        row = rows.get((event_id, endpoint_id))
        if row is None:
            report.flag("lost", "no delivery row", where)
            continue
        report.by_status[row.status] += 1
        received = posts_to[endpoint.path, event_id]
        answered_ok = ok_posts_to[endpoint.path, event_id]
        if row.status == DeliveryStatus.PENDING:
            report.flag("stuck", "delivery still PENDING", where)
        elif row.status == DeliveryStatus.PARKED:
            pass  # kept unsent for a disabled endpoint (its attempts, if any, checked below)
        elif received == 0:
            report.flag("lost", "never POSTed", where)
        elif row.status == DeliveryStatus.SUCCEEDED and answered_ok == 0:
            report.flag("lost", "SUCCEEDED but never answered 2xx", where)
        if row.status != DeliveryStatus.PENDING:
            _check_attempts(report, row, endpoint, where)
        report.duplicate_posts += max(0, received - row.attempt_rows)
        report.duplicate_successes += max(0, answered_ok - 1)
        if answered_ok > 1 and len(report.duplicate_success_examples) < 5:
            report.duplicate_success_examples.append(where)
    return report


def _check_attempts(report: Report, row: DeliveryRow, endpoint: EndpointRow, where: str) -> None:
    if row.status == DeliveryStatus.PARKED:
        if not endpoint.parks:
            report.flag("inconsistent", "PARKED for an endpoint that does not park", where)
        if row.attempt_count != row.attempt_rows or row.any_succeeded:
            report.flag("inconsistent", "PARKED after a success, or attempts not recorded", where)
        return
    if not _allowed_final(row.status, endpoint.kind, endpoint.config):
        report.flag("inconsistent", f"{row.status} not allowed by the policy", where)
    if row.attempt_count < 1 or row.attempt_count != row.attempt_rows:
        report.flag("inconsistent", "attempt_count ≠ attempts recorded", where)
        return
    if row.status == DeliveryStatus.SUCCEEDED and not row.last_succeeded:
        report.flag("inconsistent", "SUCCEEDED but its last attempt failed", where)
    if row.status == DeliveryStatus.DEAD:
        if row.any_succeeded:
            report.flag("inconsistent", "DEAD after a successful attempt", where)
        if row.attempt_count < policy_for_endpoint(endpoint.kind, endpoint.config).max_attempts:
            report.flag("inconsistent", "DEAD before its last attempt", where)


# ------------------------------------------------------------------------ reading the rows


async def read_rows(
    pool: asyncpg.Pool,
) -> tuple[list[EventRow], list[EndpointRow], dict[str, str], list[DeliveryRow]]:
    """Everything `account` needs from PostgreSQL, read straight from the tables."""
    events = [
        EventRow(r["id"], r["organization_id"], r["type"], r["dispatched_at"] is not None)
        for r in await pool.fetch(
            "SELECT id, organization_id, type, dispatched_at FROM events"
            " WHERE target_endpoint_id IS NULL"
        )
    ]
    endpoints = [
        EndpointRow(
            r["id"],
            r["organization_id"],
            r["kind"],
            tuple(r["events"]),
            r["status"] == "ACTIVE",
            urlsplit(r["url_masked"]).path,
            dict(r["config"] or {}),
            endpoint_health.parks(r["status"], r["deactivated_reason"]),
        )
        for r in await pool.fetch(
            "SELECT id, organization_id, kind, events, status, deactivated_reason, url_masked,"
            " config FROM endpoints"
        )
    ]
    plans = {r["id"]: r["plan"] for r in await pool.fetch("SELECT id, plan FROM organizations")}
    deliveries = [
        DeliveryRow(
            r["event_id"],
            r["endpoint_id"],
            r["status"],
            r["attempt_count"],
            r["attempt_rows"],
            r["last_succeeded"],
            bool(r["any_succeeded"]),
            r["last_http_status"],
        )
        for r in await pool.fetch(
            """
            SELECT d.event_id, d.endpoint_id, d.status, d.attempt_count,
                   count(a.id) AS attempt_rows,
                   bool_or(a.succeeded) AS any_succeeded,
                   (array_agg(a.succeeded ORDER BY a.attempt_number DESC))[1] AS last_succeeded,
                   (array_agg(a.http_status ORDER BY a.attempt_number DESC))[1]
                       AS last_http_status
            FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
            GROUP BY d.id, d.event_id  -- the primary key (migration 0007)
            """
        )
    ]
    return events, endpoints, plans, deliveries


async def unsettled(pool: asyncpg.Pool) -> tuple[int, int]:
    """(PENDING deliveries, events not yet dispatched): both must reach 0 after the run."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM deliveries WHERE status = 'PENDING') AS pending,"
        " (SELECT count(*) FROM events WHERE dispatched_at IS NULL"
        "  AND target_endpoint_id IS NULL) AS undispatched"
    )
    assert row is not None
    return int(row["pending"]), int(row["undispatched"])
