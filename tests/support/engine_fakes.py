"""Fakes of what the delivery engine talks to (Postgres, HTTP, the step publisher), for the
unit tests of its logic in tests/libs: one set, so a change to the engine's ports changes
them once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from libs.delivery.disabling import Disablement
from libs.delivery.engine import DeliveryEngine
from libs.delivery.http_client import HttpResult
from libs.delivery.limits import EndpointLimits
from libs.delivery.metrics import EngineMetrics
from libs.delivery.repository import AttemptRecord, DeadMark, DeliveryRow
from libs.infra.broker.messages import DeliveryStep, DeliveryTask
from tests.support.factories import delivery_task
from tests.support.factories import sender_delivery_row as delivery_row

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


@dataclass
class Repo:
    row: DeliveryRow | None
    recorded: list[AttemptRecord] = field(default_factory=list)
    record_failures: int = 0

    # what the row becomes once the transaction writing it commits (a manual retry's reopen)
    committed_row: DeliveryRow | None = None
    awaited_writers: int = 0

    loads: int = 0
    new: list[DeliveryTask] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    postponed: list[datetime] = field(default_factory=list)

    async def load(self, task: DeliveryTask, attempt_number: int) -> DeliveryRow | None:
        self.loads += 1
        return self.row

    async def new_rows(self, tasks: Sequence[DeliveryTask]) -> list[DeliveryRow | None]:
        self.new.extend(tasks)
        return [delivery_row(id=task.endpoint_id) for task in tasks]

    async def await_writers(self, task: DeliveryTask) -> None:
        self.awaited_writers += 1
        if self.committed_row is not None:
            self.row = self.committed_row

    async def record(self, attempt: AttemptRecord) -> str | None:
        if self.record_failures:
            self.record_failures -= 1
            raise ConnectionError("postgres restarting")
        self.recorded.append(attempt)
        return attempt.new_status

    # what mark_dead says of the endpoint's failing period (None: not failing)
    failing_since: datetime | None = None
    dead_in_a_row: int = 0
    parked: list[str] = field(default_factory=list)
    disabled: list[tuple[str, str]] = field(default_factory=list)

    async def mark_dead(self, task: DeliveryTask) -> DeadMark | None:
        if self.record_failures:
            raise ConnectionError("postgres restarting")
        self.dead.append(task.delivery_id)
        self.dead_in_a_row += 1
        return DeadMark("ep_1", self.failing_since, self.dead_in_a_row)

    async def park(self, task: DeliveryTask) -> bool:
        self.parked.append(task.delivery_id)
        return True

    async def disable_endpoint(self, disablement: Disablement) -> bool:
        self.disabled.append((disablement.endpoint_id, disablement.reason.value))
        return True

    async def postpone(self, task: DeliveryTask, due: datetime) -> None:
        self.postponed.append(due)


@dataclass
class Http:
    result: HttpResult
    calls: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], url_masked: str
    ) -> HttpResult:
        self.calls.append((url, body, dict(headers)))
        return self.result


@dataclass
class Retries:
    """The step publisher: retries into tiers (`published`), steps due now (`now`)."""

    fail: bool = False
    published: list[DeliveryStep] = field(default_factory=list)
    delays: list[int] = field(default_factory=list)
    exact_waits: list[float | None] = field(default_factory=list)
    now: list[DeliveryStep] = field(default_factory=list)
    deferred: list[tuple[DeliveryStep, float]] = field(default_factory=list)

    async def publish_retry(
        self, step: DeliveryStep, delay_s: int, exact_wait_s: float | None = None
    ) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.published.append(step)
        self.delays.append(delay_s)
        self.exact_waits.append(exact_wait_s)

    async def publish_now(self, step: DeliveryStep) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.now.append(step)

    async def publish_deferred(self, step: DeliveryStep, wait_s: float) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.deferred.append((step, wait_s))

    @property
    def scheduled(self) -> list[tuple[int, int | None, int | None]]:
        """(tier, next attempt, schedule start) of each retry published."""
        return [
            (delay, step.attempt, step.schedule_start)
            for delay, step in zip(self.delays, self.published, strict=True)
        ]


TASK = delivery_task(delivery_id="del_01TESTDELIVERY0000000000000", event_created_at=NOW)
OK = HttpResult(True, 200, None, "ok", 5)
FAIL_500 = HttpResult(False, 500, "HTTP 500", "no", 5)


async def no_wait() -> None:
    pass


def engine(
    repo: Repo, http: Http, retries: Retries, limits: EndpointLimits | None = None
) -> DeliveryEngine:
    return DeliveryEngine(
        repo,
        http,
        retries,
        EngineMetrics("unit"),
        limits or EndpointLimits(1000),
        retry_delay_scale=0.01,
        now=lambda: NOW,
        db_backoff=no_wait,
    )


def step(attempt: int, start: int = 1) -> DeliveryStep:
    return DeliveryStep(TASK, attempt, start)
