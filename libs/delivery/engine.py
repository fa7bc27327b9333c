"""The delivery engine: one attempt of one delivery, whichever service runs it.

    load delivery + endpoint ─► gone / not PENDING / stale ─► SETTLED (nothing to do)
      └► sign, POST ─► record attempt + delivery state (one statement)
           success ........................ SETTLED
           4xx, policy says never retry ... FAILED, SETTLED
           attempts left .................. publish to a retry tier (confirmed), SETTLED
           none left ...................... DEAD_LETTER (the runner dead-letters it → DEAD)

The sender runs `attempt` for each task from its queue; the dispatcher runs `first_attempts`
for the deliveries it has just created. Either way an Outcome comes back only after the
attempt is recorded and its next step confirmed, so the runner acknowledges its message only
then: a crashed runner's message is redelivered. A redelivered step whose attempt is already
recorded is not POSTed again; only its next step is redone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from libs.delivery.disabling import Disablement
from libs.delivery.http_client import HttpResult
from libs.delivery.metrics import EngineMetrics
from libs.delivery.repository import AttemptRecord, DeadMark, DeliveryRow
from libs.delivery.request import Unsendable, signed_request
from libs.domain import endpoint_health
from libs.domain.endpoint_health import DeactivatedReason, HealthPolicy
from libs.domain.endpoint_kinds import DeliveryStatus, rate_limit_of
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.ordering import RELEASES_LINE
from libs.domain.retry_policy import (
    Decision,
    Next,
    RetryPolicy,
    decide,
    policy_for_endpoint,
    scaled_ms,
)
from libs.infra import gathering, telemetry
from libs.infra.broker.messages import DeliveryStep, DeliveryTask

log = logging.getLogger("hookpost.delivery")

FIRST_ATTEMPT_SPAN = "first attempt"


class Outcome(StrEnum):
    SETTLED = "settled"  # recorded and its next step confirmed, or nothing left to do
    DEAD_LETTER = "dead_letter"  # recorded; no attempt left: the runner dead-letters it
    UNSETTLED = "unsettled"  # the database or the broker failed mid-way: try again later


class Repository(Protocol):
    async def load(self, task: DeliveryTask, attempt_number: int) -> DeliveryRow | None: ...

    async def new_rows(self, tasks: Sequence[DeliveryTask]) -> list[DeliveryRow | None]: ...

    async def await_writers(self, task: DeliveryTask) -> None: ...

    async def record(self, attempt: AttemptRecord) -> str | None: ...

    async def mark_dead(self, task: DeliveryTask) -> DeadMark | None: ...

    async def park(self, task: DeliveryTask) -> bool: ...

    async def disable_endpoint(self, disablement: Disablement) -> bool: ...

    async def postpone(self, task: DeliveryTask, due: datetime) -> None: ...


class Http(Protocol):
    async def post(
        self, url: str, body: bytes, headers: dict[str, str], url_masked: str
    ) -> HttpResult: ...


class StepPublisher(Protocol):
    async def publish_retry(
        self, step: DeliveryStep, delay_s: int, exact_wait_s: float | None = None
    ) -> None: ...

    async def publish_deferred(self, step: DeliveryStep, wait_s: float) -> None: ...

    async def publish_now(self, step: DeliveryStep) -> None: ...


class LineReleases(Protocol):
    """The next delivery of ordered lines (ordering.py LineReleases)."""

    async def release(self, lines: Iterable[tuple[str, str]]) -> list[DeliveryStep]: ...


class Limits(Protocol):
    """How hard the engine may push each endpoint (limits.py EndpointLimits)."""

    async def acquire(self, endpoint_id: str, rate_per_s: float | None = None) -> float | None: ...

    def release(self, endpoint_id: str, result: HttpResult) -> None: ...


@dataclass
class DeliveryEngine:
    repository: Repository
    http: Http
    publisher: StepPublisher
    metrics: EngineMetrics
    limits: Limits
    retry_delay_scale: float
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # what a failed record waits for before it tries again (the database coming back)
    db_backoff: Callable[[], Awaitable[None]] = lambda: asyncio.sleep(0.5)
    record_tries: int = 5
    sink_payload_cap_bytes: int = 10 * 1024 * 1024
    health: HealthPolicy = field(default_factory=HealthPolicy)
    # how late a PENDING delivery may be before the reconciler re-drives it (a step deferred
    # beyond it moves its due time, or it would come back twice)
    redrive_after_s: float = 300.0
    lines: LineReleases | None = None  # None: nothing is ordered (unit tests)

    async def attempt(self, step: DeliveryStep) -> Outcome:
        """Make the attempt `step` asks for, reading the delivery's current state first."""
        self._annotate(step.task)
        return await self._guarded(step, None)

    async def first_attempts(
        self, tasks: Sequence[DeliveryTask], ended: Callable[[], None] = lambda: None
    ) -> list[Outcome]:
        """Attempt 1 of deliveries the caller has just created: their rows are known (PENDING,
        nothing attempted), so they are not read; only their endpoints, from the cache.
        `ended` is called as each one's attempt is over."""
        rows = await self.repository.new_rows(tasks)
        # A lone delivery's attempt runs in its event's task: the ids it binds stay on that
        # event's later log lines, which are its only delivery's.
        return await gathering.gather(
            [self._first_attempt(task, row, ended) for task, row in zip(tasks, rows, strict=True)]
        )

    async def bury(self, task: DeliveryTask) -> Outcome:
        """A dead-lettered delivery becomes DEAD (once, however often it is buried)."""
        self._annotate(task)
        try:
            marked = await self.repository.mark_dead(task)
            if marked is not None:
                self.metrics.finished(DeliveryStatus.DEAD)
                log.info("delivery DEAD")
                if endpoint_health.is_failing(
                    marked.failing_since, marked.dead_in_a_row, self.now(), self.health
                ):
                    await self._disable(
                        Disablement(
                            marked.endpoint_id,
                            DeactivatedReason.FAILING,
                            failing_since=marked.failing_since,
                        )
                    )
            # Even when it was DEAD already: a release may not have run (a crash after the
            # mark); releasing twice changes nothing.
            await self._release_line(task.endpoint_id, task.ordering_key)
        except Exception:
            # Redelivered: marked already, it is not marked (nor counted) again; an endpoint
            # left enabled is judged again at its next DEAD delivery.
            log.exception("could not mark a delivery DEAD or release its line")
            return Outcome.UNSETTLED
        return Outcome.SETTLED

    async def _disable(self, disablement: Disablement) -> None:
        if await self.repository.disable_endpoint(disablement):
            reason = disablement.reason.value
            log.warning("endpoint disabled: %s", reason, extra={"reason": reason})

    async def _first_attempt(
        self, task: DeliveryTask, row: DeliveryRow | None, ended: Callable[[], None]
    ) -> Outcome:
        # Its own span (the sender's "process" span for attempt 1): the ids put on the
        # current span must not land on the caller's, shared by a whole fan-out.
        try:
            with telemetry.internal_span(FIRST_ATTEMPT_SPAN):
                self._annotate(task)
                # a None row: the endpoint is gone from the cache; read it, and find it gone
                return await self._guarded(DeliveryStep(task), row)
        finally:
            ended()

    @staticmethod
    def _annotate(task: DeliveryTask) -> None:
        telemetry.annotate(
            delivery_id=task.delivery_id,
            event_id=task.event_id,
            endpoint_id=task.endpoint_id,
            organization_id=task.organization_id,
        )

    async def _guarded(self, step: DeliveryStep, known: DeliveryRow | None) -> Outcome:
        try:
            return await self._run(step, known)
        except Exception:
            log.exception("delivery attempt failed mid-way; it will be tried again")
            return Outcome.UNSETTLED

    async def _run(self, step: DeliveryStep, known: DeliveryRow | None) -> Outcome:
        task = step.task
        row = known or await self._current(step)
        if row is None:
            log.info("delivery no longer exists (endpoint deleted), skipping")
            return Outcome.SETTLED
        attempt = step.attempt or row.attempt_count + 1
        schedule_start = step.schedule_start or row.schedule_start
        telemetry.annotate(attempt=attempt)
        ordering_key = task.ordering_key or row.ordering_key
        if row.status != DeliveryStatus.PENDING:
            log.info("delivery already %s, skipping", row.status)
            if row.status in RELEASES_LINE:  # its line's release may not have run (a crash)
                await self._release_line(task.endpoint_id, ordering_key)
            return Outcome.SETTLED
        if row.attempt_count > attempt:
            log.info("stale copy of an earlier attempt, skipping")
            return Outcome.SETTLED
        if self._parks(task, row):
            if await self.repository.park(task):
                self.metrics.finished(DeliveryStatus.PARKED)
                log.info("endpoint inactive: delivery PARKED")
            # Even when another copy parked it first: releasing twice changes nothing.
            await self._release_line(task.endpoint_id, ordering_key)
            return Outcome.SETTLED
        policy = policy_for_endpoint(row.endpoint.kind, row.endpoint.config)

        if row.attempt_count == attempt and row.recorded_succeeded is not None:
            # Redelivered (or re-driven) after this attempt was recorded: do not POST again,
            # redo what follows; a retry already due goes to the sender queue at once.
            log.info("attempt already recorded, resuming its next step")
            decision = decide(
                policy,
                row.recorded_succeeded,
                row.recorded_http_status,
                attempt,
                schedule_start,
                throttled_before=row.throttled,
            )
            overdue = row.next_attempt_at is not None and row.next_attempt_at <= self.now()
        else:
            wait = await self.limits.acquire(row.endpoint.id, rate_limit_of(row.endpoint.config))
            if wait is not None:
                # No room at this endpoint yet: back in a moment, holding no slot meanwhile.
                await self._defer(DeliveryStep(task, attempt, schedule_start), row, wait)
                return Outcome.SETTLED
            decision = await self._post_and_record(task, row, attempt, schedule_start, policy)
            if decision is None:
                log.info("delivery ended or deleted during the attempt, skipping")
                return Outcome.SETTLED
            overdue = False
        return await self._next_step(
            task, decision, attempt, schedule_start, overdue=overdue, ordering_key=ordering_key
        )

    @staticmethod
    def _parks(task: DeliveryTask, row: DeliveryRow) -> bool:
        """An INACTIVE endpoint's delivery is kept, not sent (a /test call's excepted: the
        user asked for that one POST)."""
        endpoint = row.endpoint
        return task.type != EventType.WEBHOOK_TEST.value and endpoint_health.parks(
            endpoint.endpoint_status, endpoint.deactivated_reason
        )

    async def _defer(self, step: DeliveryStep, row: DeliveryRow, wait_s: float) -> None:
        """Send the step back for later. A wait that takes it well past its due time moves
        that time first (one statement, at most once per half bound): the reconciler judges
        lateness by it, and would re-drive a step that is only waiting its turn."""
        due = self.now() + timedelta(seconds=wait_s)
        slack = timedelta(seconds=self.redrive_after_s / 2)
        if row.next_attempt_at is None or due > row.next_attempt_at + slack:
            await self.repository.postpone(step.task, due)
        await self.publisher.publish_deferred(step, wait_s)

    async def _current(self, step: DeliveryStep) -> DeliveryRow | None:
        """The delivery as it stands, once any manual retry reopening it has committed."""
        row = await self.repository.load(step.task, step.attempt or 1)
        if (
            row is not None
            and row.status != DeliveryStatus.PENDING
            and step.schedule_start is not None
            and (step.schedule_start > row.schedule_start or row.status == DeliveryStatus.PARKED)
        ):
            # A manual retry (or a recover) publishes its task before its transaction
            # reopening the delivery commits (so a task that never left never leaves a
            # delivery PENDING): wait for that transaction, then judge the row it left behind.
            # A PARKED delivery never attempted keeps its schedule_start when recovered.
            await self.repository.await_writers(step.task)
            row = await self.repository.load(step.task, step.attempt or 1)
        return row

    async def _post_and_record(
        self,
        task: DeliveryTask,
        row: DeliveryRow,
        attempt: int,
        schedule_start: int,
        policy: RetryPolicy,
    ) -> Decision | None:
        """POST the attempt and record it; its decision, or None when the delivery ended or
        went away meanwhile (nothing recorded)."""
        # Attempt 1 carries the delivery's own id, so a /test call's deliveryId is the
        # first X-Webhook-Delivery; every later attempt gets a fresh one.
        attempt_id = task.delivery_id if attempt == 1 else new_id(IdPrefix.DELIVERY)
        result = await self._send(task, row, attempt_id)
        decision = decide(
            policy,
            result.succeeded,
            result.http_status,
            attempt,
            schedule_start,
            throttled_before=row.throttled,
            retry_after_s=result.retry_after_s,
        )
        if endpoint_health.is_gone(result.http_status):
            # Disabled before the attempt is recorded: should the record fail, the step's
            # redelivery finds the endpoint INACTIVE and parks the delivery, unsent.
            await self._disable(
                Disablement(
                    row.endpoint.id, DeactivatedReason.ENDPOINT_GONE, http_status=result.http_status
                )
            )
            decision = Decision(Next.PARKED)
        attempted_at = self.now() - timedelta(milliseconds=result.duration_ms)
        if attempt == 1:
            self.metrics.first_attempt_started(attempted_at, task.event_created_at)
        next_attempt_at = self._due(decision)
        status = await self._record(
            AttemptRecord(
                attempt_id=attempt_id,
                delivery_id=task.delivery_id,
                event_id=task.event_id,
                attempt_number=attempt,
                attempted_at=attempted_at,
                duration_ms=result.duration_ms,
                http_status=result.http_status,
                error=result.error,
                response_excerpt=result.response_excerpt,
                succeeded=result.succeeded,
                new_status=decision.status.value,
                next_attempt_at=next_attempt_at,
                endpoint_failed=endpoint_health.attempt_effect(
                    result.succeeded, result.http_status
                ),
            )
        )
        return None if status is None else decision

    def _due(self, decision: Decision) -> datetime | None:
        """When the delivery's next step is due (what the reconciler goes by): its retry, or
        its dead letter at once; None once it has ended."""
        if decision.next is Next.RETRY:
            assert decision.wait_s is not None
            return self.now() + timedelta(
                milliseconds=scaled_ms(decision.wait_s, self.retry_delay_scale)
            )
        if decision.next is Next.EXHAUSTED:
            return self.now()
        return None

    async def _next_step(
        self,
        task: DeliveryTask,
        decision: Decision,
        attempt: int,
        schedule_start: int,
        *,
        overdue: bool,
        ordering_key: str | None = None,
    ) -> Outcome:
        if decision.next is Next.RETRY:
            assert decision.delay_s is not None
            next_step = DeliveryStep(task, attempt + 1, schedule_start)
            if overdue:
                await self.publisher.publish_now(next_step)
            else:
                await self.publisher.publish_retry(
                    next_step, decision.delay_s, exact_wait_s=decision.exact_wait_s
                )
            return Outcome.SETTLED
        if decision.next is Next.EXHAUSTED:
            log.info("no attempts left, dead-lettering")
            return Outcome.DEAD_LETTER
        self.metrics.finished(decision.status)
        await self._release_line(task.endpoint_id, ordering_key)
        return Outcome.SETTLED

    async def _release_line(self, endpoint_id: str, ordering_key: str | None) -> None:
        """A line's head is in RELEASES_LINE: the next of its line goes (libs/delivery/
        ordering.py). Raises when the release or its publish fails: the step is then not
        acknowledged, and its redelivery, finding the delivery so, releases again."""
        if ordering_key is None or self.lines is None:
            return
        for promoted in await self.lines.release([(endpoint_id, ordering_key)]):
            await self.publisher.publish_now(promoted)

    async def _send(self, task: DeliveryTask, row: DeliveryRow, attempt_id: str) -> HttpResult:
        """The attempt's POST, in the endpoint slot `_run` acquired (given back here)."""
        started = time.monotonic()
        result = HttpResult(False, None, "not sent", None, 0, refused=True)
        try:
            request = signed_request(task, row, attempt_id, self.sink_payload_cap_bytes)
        except Unsendable as exc:
            result = HttpResult(False, None, f"not sent: {exc}", None, 0, refused=True)
        else:
            result = await self.http.post(
                request.url, request.body, request.headers, request.url_masked
            )
            self.metrics.attempt_took(time.monotonic() - started)
        finally:
            self.limits.release(row.endpoint.id, result)
        self._observe(result, row.endpoint.url_masked)
        return result

    async def _record(self, attempt: AttemptRecord) -> str | None:
        """Record a POST that already happened, riding out a short Postgres outage.

        Giving the step back instead would POST the same attempt again; the statement is
        idempotent, so trying it again is safe.
        """
        for remaining in range(self.record_tries - 1, -1, -1):
            try:
                return await self.repository.record(attempt)
            except Exception:
                if remaining == 0:
                    raise
                log.warning("could not record an attempt, trying again", exc_info=True)
                await self.db_backoff()
        raise AssertionError("unreachable")

    def _observe(self, result: HttpResult, url_masked: str) -> None:
        self.metrics.attempted(result)
        extra = {
            "url": url_masked,
            "http_status": result.http_status,
            "duration_ms": result.duration_ms,
        }
        if result.succeeded:
            log.debug("attempt succeeded", extra=extra)
        else:
            log.info("attempt failed: %s", result.error, extra=extra)
