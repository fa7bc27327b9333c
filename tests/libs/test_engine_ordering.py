"""The engine's part in ordered delivery, with fakes in place of Postgres, the broker and
HTTP (unit tests; the SQL is tested in tests/pipeline/test_ordering_lines.py): when a
line's head ends or is parked, its line is released and the next delivery's step published
at once; nothing else ever asks for a release."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pytest

from libs.delivery.engine import DeliveryEngine, Outcome
from libs.infra.broker.messages import DeliveryStep
from tests.support import engine_fakes as fakes
from tests.support.factories import sender_delivery_row as delivery_row

KEYED = fakes.TASK.model_copy(update={"ordering_key": "customer-7"})
NEXT = KEYED.model_copy(update={"delivery_id": "del_next", "event_id": "evt_next"})
NEXT_STEP = DeliveryStep(NEXT)  # never attempted: attempt 1 of the first schedule


@dataclass
class FakeLines:
    """LineReleases: what was released, and what each release promotes."""

    promotes: list[DeliveryStep] = field(default_factory=list)
    fail: bool = False
    released: list[tuple[str, str]] = field(default_factory=list)

    async def release(self, lines: Iterable[tuple[str, str]]) -> list[DeliveryStep]:
        if self.fail:
            raise ConnectionError("postgres restarting")
        self.released.extend(lines)
        promoted, self.promotes = self.promotes, []
        return promoted


def ordered(
    repo: fakes.Repo, http: fakes.Http, retries: fakes.Retries, lines: FakeLines
) -> DeliveryEngine:
    return replace(fakes.engine(repo, http, retries), lines=lines)


async def test_a_head_that_succeeds_releases_its_line_and_sends_the_next() -> None:
    repo, retries, lines = fakes.Repo(delivery_row()), fakes.Retries(), FakeLines([NEXT_STEP])
    outcome = await ordered(repo, fakes.Http(fakes.OK), retries, lines).attempt(DeliveryStep(KEYED))
    assert outcome is Outcome.SETTLED
    assert lines.released == [(KEYED.endpoint_id, "customer-7")]
    assert [(s.task, s.attempt, s.schedule_start) for s in retries.now] == [(NEXT, 1, 1)]
    assert retries.now[0].message().body.count(b'"orderingKey":"customer-7"') == 1


async def test_a_promoted_delivery_reopened_by_hand_goes_at_its_own_attempt() -> None:
    """A retried delivery that waited HELD is released at its next attempt, in the schedule
    its retry opened: the release's step is published as it is."""
    reopened = DeliveryStep(NEXT, 5, 5)
    repo, retries, lines = fakes.Repo(delivery_row()), fakes.Retries(), FakeLines([reopened])
    await ordered(repo, fakes.Http(fakes.OK), retries, lines).attempt(DeliveryStep(KEYED))
    assert retries.now == [reopened]


async def test_a_head_with_a_retry_ahead_releases_nothing() -> None:
    repo, retries, lines = fakes.Repo(delivery_row()), fakes.Retries(), FakeLines([NEXT_STEP])
    await ordered(repo, fakes.Http(fakes.FAIL_500), retries, lines).attempt(DeliveryStep(KEYED))
    assert lines.released == [] and retries.now == [] and len(retries.published) == 1


async def test_the_key_may_come_from_the_row() -> None:
    """A task built without its key (a manual retry's) still releases its line."""
    repo, lines = fakes.Repo(delivery_row(ordering_key="from-row")), FakeLines()
    await ordered(repo, fakes.Http(fakes.OK), fakes.Retries(), lines).attempt(
        DeliveryStep(fakes.TASK)
    )
    assert lines.released == [(fakes.TASK.endpoint_id, "from-row")]


async def test_an_unordered_delivery_never_asks() -> None:
    lines = FakeLines()
    for result in (fakes.OK, fakes.FAIL_500):
        await ordered(
            fakes.Repo(delivery_row()), fakes.Http(result), fakes.Retries(), lines
        ).attempt(DeliveryStep(fakes.TASK))
    await ordered(fakes.Repo(delivery_row()), fakes.Http(fakes.OK), fakes.Retries(), lines).bury(
        fakes.TASK
    )
    assert lines.released == []
    assert b"orderingKey" not in DeliveryStep(fakes.TASK).message().body  # the body is as it was


async def test_a_buried_head_releases_its_line() -> None:
    retries, lines = fakes.Retries(), FakeLines([NEXT_STEP])
    outcome = await ordered(fakes.Repo(delivery_row()), fakes.Http(fakes.OK), retries, lines).bury(
        KEYED
    )
    assert outcome is Outcome.SETTLED and [s.task for s in retries.now] == [NEXT]


async def test_a_head_parked_at_send_time_releases_its_line() -> None:
    """Its endpoint went INACTIVE while it waited: it is kept unsent, and the next of its
    line goes now (to be parked in turn while the endpoint stays INACTIVE), not only when
    the reconciler finds the line stuck."""
    row = delivery_row(endpoint_status="INACTIVE", deactivated_reason=None)
    repo, http, retries, lines = (
        fakes.Repo(row),
        fakes.Http(fakes.OK),
        fakes.Retries(),
        FakeLines([NEXT_STEP]),
    )
    outcome = await ordered(repo, http, retries, lines).attempt(DeliveryStep(KEYED, 2, 1))
    assert outcome is Outcome.SETTLED and repo.parked == [KEYED.delivery_id]
    assert http.calls == [] and repo.recorded == []
    assert lines.released == [(KEYED.endpoint_id, "customer-7")] and retries.now == [NEXT_STEP]


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "DEAD", "PARKED"])
async def test_a_redelivered_step_of_an_ended_head_releases_again(status: str) -> None:
    """A crash between the record (or the park) and the release: the redelivered step finds
    the delivery ended, sends nothing, and releases (a release that already ran changes
    nothing)."""
    repo, http, lines = (
        fakes.Repo(delivery_row(status=status)),
        fakes.Http(fakes.OK),
        FakeLines(),
    )
    assert await ordered(repo, http, fakes.Retries(), lines).attempt(DeliveryStep(KEYED)) is (
        Outcome.SETTLED
    )
    assert http.calls == [] and lines.released == [(KEYED.endpoint_id, "customer-7")]


async def test_a_release_that_fails_leaves_the_step_unacknowledged() -> None:
    repo, lines = fakes.Repo(delivery_row()), FakeLines(fail=True)
    outcome = await ordered(repo, fakes.Http(fakes.OK), fakes.Retries(), lines).attempt(
        DeliveryStep(KEYED)
    )
    assert outcome is Outcome.UNSETTLED and len(repo.recorded) == 1
    outcome = await ordered(repo, fakes.Http(fakes.OK), fakes.Retries(), lines).bury(KEYED)
    assert outcome is Outcome.UNSETTLED
