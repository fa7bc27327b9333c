"""Handler logic with fakes in place of Postgres, the broker and HTTP (no services needed)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from libs.domain.retry_policy import WEBHOOK_POLICY, agent_sink_policy
from libs.domain.signing import verify_standard_webhooks, verify_v1
from libs.infra.broker.messages import DeliveryTask, EventMessage
from libs.infra.broker.topology import ATTEMPT_HEADER, SCHEDULE_START_HEADER
from libs.infra.url_safety import SafetyPolicy, UnsafeURLError
from services.dispatcher.handler import Dispatcher
from services.dispatcher.handler import Verdict as DispatchVerdict
from services.dispatcher.publisher import TaskStep
from services.dispatcher.repository import (
    EventContext,
    EventDataError,
    PendingDelivery,
    PendingStep,
    PlannedDeliveries,
)
from services.sender.consumer import (
    DeliverySender,
    Step,
    Verdict,
    customer_headers,
    decide,
)
from services.sender.http_client import HttpClient, HttpResult, SafeResolver, read_excerpt
from services.sender.repository import AttemptRecord, DeliveryRow
from services.sender.signatures import SigningKeys, UnsupportedSignatureScheme, signature_headers
from tests.support.factories import sender_delivery_row as delivery_row

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


# ---------------------------------------------------------------- retry decisions


def test_decide_walks_the_webhook_schedule_then_exhausts() -> None:
    assert decide(WEBHOOK_POLICY, True, 200, 1, 1).step is Step.SUCCEEDED
    assert decide(WEBHOOK_POLICY, False, 500, 1, 1) == decide(WEBHOOK_POLICY, False, None, 1, 1)
    assert [decide(WEBHOOK_POLICY, False, 500, n, 1).delay_s for n in (1, 2, 3)] == [60, 300, 1800]
    assert decide(WEBHOOK_POLICY, False, 400, 2, 1).step is Step.RETRY  # 4xx retried
    assert decide(WEBHOOK_POLICY, False, 503, 4, 1).step is Step.EXHAUSTED


def test_decide_counts_from_the_schedule_start_after_a_manual_retry() -> None:
    # Attempts 1-4 died; a manual retry opened a new schedule at attempt 5.
    assert decide(WEBHOOK_POLICY, False, 500, 5, 5).delay_s == 60
    assert decide(WEBHOOK_POLICY, False, 500, 8, 5).step is Step.EXHAUSTED


def test_decide_agent_sink_4xx_is_final() -> None:
    policy = agent_sink_policy(2)
    assert decide(policy, False, 422, 1, 1).step is Step.FAILED
    assert decide(policy, False, 500, 1, 1).delay_s == 5
    assert decide(policy, False, 500, 3, 1).step is Step.EXHAUSTED


# ---------------------------------------------------------------- headers and signatures


def test_customer_headers_never_override_reserved_headers() -> None:
    headers = customer_headers(
        "X-Webhook-Signature",
        "forged",
        {
            "X-Team": "maps",
            "x-WEBHOOK-event": "forged",
            "X-Webhook-Delivery": "forged",
            "content-TYPE": "text/plain",
            "Host": "evil.example",
            "Transfer-Encoding": "chunked",
            "X-Injected": "a\r\nX-Evil: 1",
            "Bad Name": "x",
        },
    )
    assert headers == {"X-Team": "maps"}
    assert customer_headers("Authorization", "Bearer k", {"authorization": "other"}) == {
        "Authorization": "Bearer k"
    }


def test_signature_headers_sign_with_every_current_secret() -> None:
    body = b'{"id":"del_1"}'
    signed = signature_headers(SigningKeys("v1", ["whsec_new", "whsec_old"]), body, "a", "e", 1000)
    header = signed["X-Webhook-Signature"]
    assert header.startswith("t=1000,v1=") and header.count("v1=") == 2
    for secret in ("whsec_new", "whsec_old"):
        verify_v1(body, header, secret, now=1000)
    with pytest.raises(UnsupportedSignatureScheme):
        signature_headers(SigningKeys("hmac-md5", ["whsec_new"]), body, "a", "e", 1000)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    standard = signature_headers(
        SigningKeys("standard-webhooks", [secret]), body, "a", "evt_9", 1000
    )
    assert standard["webhook-id"] == "evt_9" and standard["webhook-timestamp"] == "1000"
    verify_standard_webhooks(body, "evt_9", "1000", standard["webhook-signature"], secret, now=1000)
    with pytest.raises(UnsupportedSignatureScheme):
        signature_headers(SigningKeys("v1", []), body, "a", "e", 1000)


# ---------------------------------------------------------------- SSRF at send time


class FixedResolver:
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


PROD = SafetyPolicy.from_settings(False, [])


async def test_safe_resolver_refuses_when_any_address_is_private() -> None:
    with pytest.raises(UnsafeURLError, match=r"10\.1\.2\.3"):
        await SafeResolver(PROD, FixedResolver("93.184.216.34", "10.1.2.3")).resolve("x.test", 443)
    with pytest.raises(UnsafeURLError):
        await SafeResolver(PROD, FixedResolver("::ffff:127.0.0.1")).resolve("x.test", 443)
    with pytest.raises(UnsafeURLError):
        await SafeResolver(PROD, FixedResolver("169.254.169.254")).resolve("x.test", 443)


async def test_safe_resolver_returns_exactly_the_checked_addresses() -> None:
    results = await SafeResolver(PROD, FixedResolver("93.184.216.34")).resolve("x.test", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]
    allowed = SafetyPolicy.from_settings(False, ["10.0.0.0/8"])
    results = await SafeResolver(allowed, FixedResolver("10.1.2.3")).resolve("x.test", 443)
    assert [r["host"] for r in results] == ["10.1.2.3"]


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",  # prod: https only
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_preflight_refuses_literal_private_hosts_and_bad_shapes(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        HttpClient(PROD, 5, 1).preflight(url)


def test_preflight_lets_dev_mode_reach_loopback_over_http() -> None:
    HttpClient(SafetyPolicy.from_settings(True, []), 5, 1).preflight("http://127.0.0.1:8080/h")


async def test_read_excerpt_stops_at_the_limit() -> None:
    class Endless:
        reads = 0

        async def read(self, n: int) -> bytes:
            self.reads += 1
            return b"x" * min(n, 1000)

    stream = Endless()
    excerpt = await read_excerpt(stream, 4096)  # type: ignore[arg-type]
    assert len(excerpt) == 4096 and stream.reads == 5


# ---------------------------------------------------------------- sender handler


@dataclass
class FakeSenderRepo:
    row: DeliveryRow | None
    recorded: list[AttemptRecord] = field(default_factory=list)
    record_failures: int = 0

    # what the row becomes once the transaction writing it commits (a manual retry's reopen)
    committed_row: DeliveryRow | None = None
    awaited_writers: int = 0

    loads: int = 0

    async def load(self, delivery_id: str, attempt_number: int) -> DeliveryRow | None:
        self.loads += 1
        return self.row

    async def await_writers(self, delivery_id: str) -> None:
        self.awaited_writers += 1
        if self.committed_row is not None:
            self.row = self.committed_row

    async def record(self, attempt: AttemptRecord) -> str | None:
        if self.record_failures:
            self.record_failures -= 1
            raise ConnectionError("postgres restarting")
        self.recorded.append(attempt)
        return attempt.new_status


@dataclass
class FakeHttp:
    result: HttpResult
    calls: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], url_masked: str
    ) -> HttpResult:
        self.calls.append((url, body, dict(headers)))
        return self.result


@dataclass
class FakeRetries:
    fail: bool = False
    published: list[tuple[int, int, int]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def publish_retry(
        self, body: bytes, delivery_id: str, delay_s: int, attempt: int, schedule_start: int
    ) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.published.append((delay_s, attempt, schedule_start))
        self.bodies.append(body)


TASK = DeliveryTask(
    delivery_id="del_01TESTDELIVERY0000000000000",
    event_id="evt_1",
    endpoint_id="dest_1",
    organization_id="org_1",
    type="mapping.completed",
    event_created_at=NOW,
    data={"a": 1},
)
OK = HttpResult(True, 200, None, "ok", 5)
FAIL_500 = HttpResult(False, 500, "HTTP 500", "no", 5)


async def no_wait() -> None:
    pass


def sender(repo: FakeSenderRepo, http: FakeHttp, retries: FakeRetries) -> DeliverySender:
    return DeliverySender(
        repo, http, retries, retry_delay_scale=0.01, now=lambda: NOW, db_backoff=no_wait
    )


def headers(attempt: int, start: int = 1) -> dict[str, int]:
    return {ATTEMPT_HEADER: attempt, SCHEDULE_START_HEADER: start}


async def test_sender_success_records_attempt_one_under_the_delivery_id() -> None:
    repo, http, retries = FakeSenderRepo(delivery_row()), FakeHttp(OK), FakeRetries()
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(1)) is Verdict.ACK
    [(url, body, sent)] = http.calls
    assert url == "https://hooks.example.com/x?token=abc"
    assert sent["X-Webhook-Delivery"] == TASK.delivery_id
    verify_v1(body, sent["X-Webhook-Signature"], "whsec_unit")
    [record] = repo.recorded
    assert (record.attempt_id, record.new_status, record.attempt_number) == (
        TASK.delivery_id,
        "SUCCEEDED",
        1,
    )
    assert retries.published == []


async def test_sender_given_the_row_it_just_created_posts_without_reading_it() -> None:
    repo, http, retries = FakeSenderRepo(None), FakeHttp(OK), FakeRetries()
    verdict = await sender(repo, http, retries).handle_task(
        TASK, TASK.to_bytes(), headers(1), created=delivery_row()
    )
    assert verdict is Verdict.ACK and repo.loads == 0
    assert len(http.calls) == 1 and repo.recorded[0].new_status == "SUCCEEDED"


async def test_a_first_attempt_given_no_wire_form_publishes_its_retry_with_the_tasks() -> None:
    """The dispatcher's own first attempts pass no body: the retry still carries the task."""
    repo, http, retries = FakeSenderRepo(None), FakeHttp(FAIL_500), FakeRetries()
    verdict = await sender(repo, http, retries).handle_task(
        TASK, None, headers(1), created=delivery_row()
    )
    assert verdict is Verdict.ACK and retries.published == [(60, 2, 1)]
    assert [DeliveryTask.model_validate_json(body) for body in retries.bodies] == [TASK]


async def test_sender_failure_with_attempts_left_publishes_the_next_tier_then_acks() -> None:
    repo = FakeSenderRepo(delivery_row(attempt_count=1))
    http, retries = FakeHttp(FAIL_500), FakeRetries()
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(2)) is Verdict.ACK
    [(_, _, sent)] = http.calls
    [record] = repo.recorded
    assert sent["X-Webhook-Delivery"] == record.attempt_id != TASK.delivery_id
    assert record.new_status == "PENDING"
    assert record.next_attempt_at is not None and record.next_attempt_at > NOW
    assert retries.published == [(300, 3, 1)]


async def test_sender_rides_out_a_short_database_outage_without_posting_again() -> None:
    repo, http, retries = (
        FakeSenderRepo(delivery_row(), record_failures=2),
        FakeHttp(OK),
        FakeRetries(),
    )
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(1)) is Verdict.ACK
    assert len(http.calls) == 1 and len(repo.recorded) == 1
    repo, http = FakeSenderRepo(delivery_row(), record_failures=99), FakeHttp(OK)
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(1)) is Verdict.REQUEUE
    assert len(http.calls) == 1


async def test_sender_requeues_when_the_retry_cannot_be_published() -> None:
    repo, http = FakeSenderRepo(delivery_row()), FakeHttp(FAIL_500)
    verdict = await sender(repo, http, FakeRetries(fail=True)).handle(TASK.to_bytes(), headers(1))
    assert verdict is Verdict.REQUEUE


async def test_sender_rejects_when_no_attempts_are_left() -> None:
    repo, http, retries = (
        FakeSenderRepo(delivery_row(attempt_count=3)),
        FakeHttp(FAIL_500),
        FakeRetries(),
    )
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(4)) is Verdict.REJECT
    assert retries.published == [] and repo.recorded[0].new_status == "PENDING"


async def test_sender_redelivery_of_a_recorded_attempt_redoes_only_the_next_step() -> None:
    row = delivery_row(attempt_count=1, recorded_succeeded=False, recorded_http_status=500)
    repo, http, retries = FakeSenderRepo(row), FakeHttp(OK), FakeRetries()
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(1)) is Verdict.ACK
    assert http.calls == [] and repo.recorded == []
    assert retries.published == [(60, 2, 1)]


@pytest.mark.parametrize(
    "row",
    [
        None,
        delivery_row(status="SUCCEEDED"),
        delivery_row(status="DEAD"),
        delivery_row(attempt_count=3),
    ],
)
async def test_sender_skips_gone_finished_and_stale_tasks(row: DeliveryRow | None) -> None:
    repo, http, retries = FakeSenderRepo(row), FakeHttp(OK), FakeRetries()
    assert await sender(repo, http, retries).handle(TASK.to_bytes(), headers(2)) is Verdict.ACK
    assert http.calls == [] and repo.recorded == [] and retries.published == []


async def test_sender_waits_for_a_manual_retry_reopen_that_has_not_committed_yet() -> None:
    # The api publishes the retry (attempt 5, new schedule from 5) before its transaction
    # commits: the first read still sees DEAD. The attempt must be sent, not skipped.
    dead = delivery_row(status="DEAD", attempt_count=4, schedule_start=1)
    repo = FakeSenderRepo(dead, committed_row=replace(dead, status="PENDING", schedule_start=5))
    http = FakeHttp(OK)
    reopened = headers(5, 5)
    assert await sender(repo, http, FakeRetries()).handle(TASK.to_bytes(), reopened) is Verdict.ACK
    assert repo.awaited_writers == 1 and len(http.calls) == 1
    assert [(a.attempt_number, a.new_status) for a in repo.recorded] == [(5, "SUCCEEDED")]


async def test_sender_skips_a_manual_retry_that_rolled_back() -> None:
    dead = delivery_row(status="DEAD", attempt_count=4, schedule_start=1)
    repo = FakeSenderRepo(dead)  # the reopen never commits: the row stays DEAD
    http = FakeHttp(OK)
    reopened = headers(5, 5)
    assert await sender(repo, http, FakeRetries()).handle(TASK.to_bytes(), reopened) is Verdict.ACK
    assert repo.awaited_writers == 1 and http.calls == [] and repo.recorded == []


async def test_sender_rejects_a_malformed_task() -> None:
    repo, http, retries = FakeSenderRepo(delivery_row()), FakeHttp(OK), FakeRetries()
    assert await sender(repo, http, retries).handle(b"{not json", {}) is Verdict.REJECT


# ---------------------------------------------------------------- dispatcher handler


@dataclass
class FakeLocks:
    repo: FakeDispatchRepo
    wait: bool
    held: list[str] = field(default_factory=list)

    async def __aenter__(self) -> FakeLocks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for event_id in self.held:
            self.repo.locks.pop(event_id).set()

    async def prepare(
        self, events: Sequence[EventMessage], pending_limit: int
    ) -> list[EventContext | None]:
        self.repo.prepared.append(([e.id for e in events], self.wait))
        contexts: list[EventContext | None] = []
        for event in events:
            ctx = self.repo.contexts.get(event.id, self.repo.ctx)
            if ctx is None:
                contexts.append(None)
                continue
            while self.wait and event.id in self.repo.locks:
                await self.repo.locks[event.id].wait()
            locked = event.id not in self.repo.locks
            if locked:
                self.repo.locks[event.id] = asyncio.Event()
                self.held.append(event.id)
            dispatched_at = NOW if event.id in self.repo.marked else ctx.dispatched_at
            contexts.append(replace(ctx, locked=locked, dispatched_at=dispatched_at))
        return contexts

    async def drop(self, event_ids: Sequence[str], hour: str) -> dict[str, int]:
        self.repo.drops.extend([hour] * len(event_ids))
        return {event_id: len(self.repo.drops) for event_id in event_ids}

    async def insert_deliveries(
        self, planned: Sequence[PlannedDeliveries], *, finished: Sequence[str] = ()
    ) -> dict[str, list[PendingDelivery] | None]:
        ids = [p.event_id for p in planned]
        self.repo.inserted.append(ids)
        if self.repo.poison in ids:
            raise EventDataError("invalid byte sequence")
        if self.repo.fail_insert:
            raise ConnectionError("postgres gone")
        earlier = [PendingDelivery(f"del_{e}", e) for e in self.repo.extra_pending]
        found = {
            p.event_id: None
            if self.repo.dispatched_under_lock or p.event_id in self.repo.marked
            else earlier
            + [PendingDelivery(d, e) for d, e in zip(p.delivery_ids, p.endpoint_ids, strict=True)]
            for p in planned
        }
        self.repo.marked_on_insert.append(list(finished))
        self.repo.marked.extend(event_id for event_id in finished if found[event_id] is not None)
        for event_id in finished:
            self.held.remove(event_id)
            self.repo.locks.pop(event_id).set()
        return found

    async def finish(self, event_ids: Sequence[str]) -> None:
        if self.repo.fail_finish:
            raise ConnectionError("postgres gone")
        self.repo.mark_calls.append(list(event_ids))
        self.repo.marked.extend(event_ids)
        await self.__aexit__()
        self.held.clear()


@dataclass
class FakeDispatchRepo:
    ctx: EventContext | None  # every event's, unless `contexts` names one
    contexts: dict[str, EventContext | None] = field(default_factory=dict)
    dispatched_under_lock: bool = False
    poison: str | None = None  # an event whose deliveries statement fails on its data
    marked: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    locks: dict[str, asyncio.Event] = field(default_factory=dict)
    prepared: list[tuple[list[str], bool]] = field(default_factory=list)
    inserted: list[list[str]] = field(default_factory=list)
    mark_calls: list[list[str]] = field(default_factory=list)  # finish
    marked_on_insert: list[list[str]] = field(default_factory=list)  # insert_deliveries
    fail_finish: bool = False
    fail_insert: bool = False
    extra_pending: list[str] = field(default_factory=list)  # an earlier run's, per endpoint
    pending: list[PendingStep] = field(default_factory=list)  # a dispatched event's

    def event_locks(self, *, wait: bool = False) -> FakeLocks:
        return FakeLocks(self, wait)

    async def pending_steps(self, event_id: str) -> list[PendingStep]:
        return list(self.pending)


@dataclass
class FakePublisher:
    fail: bool = False
    fail_events: set[str] = field(default_factory=set)
    tasks: list[DeliveryTask] = field(default_factory=list)
    steps: list[TaskStep] = field(default_factory=list)

    async def publish_steps(self, steps: Sequence[TaskStep]) -> None:
        await asyncio.sleep(0)  # confirms arrive later: the batch's other events go on
        if self.fail or any(s.task.event_id in self.fail_events for s in steps):
            raise ConnectionError("broker gone")
        self.steps.extend(steps)
        self.tasks.extend(step.task for step in steps)


def context(
    plan: str = "FREE", pending: int = 0, endpoints: Sequence[str] = ("dest_1",), **kw: Any
) -> EventContext:
    return EventContext(
        plan=plan,
        stored_organization_id=kw.get("stored"),
        dispatched_at=kw.get("dispatched_at"),
        pending=pending,
        endpoint_ids=list(endpoints),
    )


def event(event_type: str = "mapping.completed", **kw: Any) -> bytes:
    return EventMessage(
        id=kw.pop("event_id", "evt_1"),
        organization_id="org_1",
        type=event_type,
        data={"big": "y" * kw.pop("size", 1)},
        created_at=NOW,
        **kw,
    ).to_bytes()


def dispatcher(repo: FakeDispatchRepo, publisher: FakePublisher) -> Dispatcher:
    return Dispatcher(repo, publisher, pending_limit=3, payload_cap_bytes=1024, now=lambda: NOW)


async def handle_together(d: Dispatcher, *bodies: bytes) -> list[DispatchVerdict]:
    """Messages in flight at the same moment (one prefetch window)."""
    return list(await asyncio.gather(*(d.handle(body) for body in bodies)))


async def test_dispatcher_publishes_one_task_per_endpoint_then_marks_dispatched() -> None:
    repo, publisher = FakeDispatchRepo(context(endpoints=["dest_1", "dest_2"])), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event(size=2000)) is DispatchVerdict.ACK
    assert [t.endpoint_id for t in publisher.tasks] == ["dest_1", "dest_2"]
    assert len({t.delivery_id for t in publisher.tasks}) == 2
    assert publisher.tasks[0].data == {"truncated": True, "dataRef": "/api/v1/events/evt_1"}
    assert repo.marked == ["evt_1"] and repo.locks == {}


async def test_dispatcher_does_not_mark_dispatched_when_publishing_fails() -> None:
    repo = FakeDispatchRepo(context())
    verdict = await dispatcher(repo, FakePublisher(fail=True)).handle(event())
    assert verdict is DispatchVerdict.REQUEUE and not repo.marked and repo.locks == {}


async def test_dispatcher_rejects_unknown_orgs_and_malformed_messages() -> None:
    publisher = FakePublisher()
    assert (
        await dispatcher(FakeDispatchRepo(None), publisher).handle(event())
        is DispatchVerdict.REJECT
    )
    assert (
        await dispatcher(FakeDispatchRepo(context()), publisher).handle(b"[]")
        is DispatchVerdict.REJECT
    )
    assert publisher.tasks == []


async def test_dispatcher_rejects_an_event_id_stored_for_another_organization() -> None:
    repo, publisher = FakeDispatchRepo(context(stored="org_other")), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event()) is DispatchVerdict.REJECT
    assert publisher.tasks == [] and not repo.marked


async def test_dispatcher_acks_duplicates_without_publishing() -> None:
    for repo in (
        FakeDispatchRepo(context(dispatched_at=NOW)),
        FakeDispatchRepo(context(), dispatched_under_lock=True),
    ):
        publisher = FakePublisher()
        assert await dispatcher(repo, publisher).handle(event()) is DispatchVerdict.ACK
        assert publisher.tasks == [] and not repo.marked


async def test_dispatcher_plan_gate() -> None:
    publisher = FakePublisher()
    repo = FakeDispatchRepo(context(plan="FREE"))
    assert (
        await dispatcher(repo, publisher).handle(event("mapping.error.resolved"))
        is DispatchVerdict.ACK
    )
    assert publisher.tasks == [] and repo.marked
    repo = FakeDispatchRepo(context(plan="PRO"))
    await dispatcher(repo, publisher).handle(event("mapping.error.resolved"))
    assert len(publisher.tasks) == 1


async def test_dispatcher_drops_over_the_pending_limit_and_counts_by_hour() -> None:
    repo, publisher = FakeDispatchRepo(context(pending=4)), FakePublisher()
    assert await dispatcher(repo, publisher).handle(event()) is DispatchVerdict.ACK
    assert repo.drops == ["2026-11-22T12"] and publisher.tasks == []
    repo = FakeDispatchRepo(context(pending=3))  # at the limit: still delivered
    await dispatcher(repo, publisher).handle(event())
    assert repo.drops == [] and len(publisher.tasks) == 1


async def test_dispatcher_targeted_test_event_uses_the_given_delivery_id() -> None:
    repo, publisher = FakeDispatchRepo(context(pending=99)), FakePublisher()
    body = event("webhook.test", target_endpoint_id="dest_1", target_delivery_id="del_TARGET")
    assert await dispatcher(repo, publisher).handle(body) is DispatchVerdict.ACK
    assert [(t.delivery_id, t.endpoint_id) for t in publisher.tasks] == [("del_TARGET", "dest_1")]


async def test_dispatcher_events_in_flight_together_share_each_statement() -> None:
    ids = [f"evt_{n}" for n in range(6)]
    repo, publisher = FakeDispatchRepo(context()), FakePublisher()
    repo.contexts = {"evt_4": None, "evt_5": context(pending=4)}  # unknown org, over limit
    verdicts = await handle_together(dispatcher(repo, publisher), *(event(event_id=i) for i in ids))
    assert verdicts == [DispatchVerdict.ACK] * 4 + [DispatchVerdict.REJECT, DispatchVerdict.ACK]
    assert repo.prepared == [(ids, False)]
    assert repo.inserted == [ids[:4]] and repo.mark_calls == [ids[:4]]
    assert repo.drops == ["2026-11-22T12"]
    assert sorted(t.event_id for t in publisher.tasks) == ids[:4]


async def test_dispatcher_one_unconfirmed_event_is_requeued_alone() -> None:
    repo, publisher = FakeDispatchRepo(context()), FakePublisher(fail_events={"evt_b"})
    verdicts = await handle_together(
        dispatcher(repo, publisher), *(event(event_id=i) for i in ("evt_a", "evt_b", "evt_c"))
    )
    assert verdicts == [DispatchVerdict.ACK, DispatchVerdict.REQUEUE, DispatchVerdict.ACK]
    assert repo.mark_calls == [["evt_a", "evt_c"]] and repo.locks == {}


async def test_dispatcher_twin_waits_for_its_copy_alone_then_publishes_nothing() -> None:
    repo, publisher = FakeDispatchRepo(context()), FakePublisher()
    verdicts = await handle_together(
        dispatcher(repo, publisher), event(event_id="evt_a"), event(event_id="evt_a")
    )
    assert verdicts == [DispatchVerdict.ACK, DispatchVerdict.ACK]
    # never in one batch; the copy that found the lock taken waited for it, alone
    assert repo.prepared == [(["evt_a"], False), (["evt_a"], False), (["evt_a"], True)]
    assert [t.event_id for t in publisher.tasks] == ["evt_a"] and repo.marked == ["evt_a"]


async def test_dispatcher_one_events_bad_data_does_not_requeue_its_batch() -> None:
    repo, publisher = FakeDispatchRepo(context(), poison="evt_b"), FakePublisher()
    verdicts = await handle_together(
        dispatcher(repo, publisher), *(event(event_id=i) for i in ("evt_a", "evt_b", "evt_c"))
    )
    assert verdicts == [DispatchVerdict.ACK, DispatchVerdict.REQUEUE, DispatchVerdict.ACK]
    assert sorted(repo.marked) == ["evt_a", "evt_c"] and repo.locks == {}
    assert sorted(t.event_id for t in publisher.tasks) == ["evt_a", "evt_c"]
