"""The endpoint health rules (libs/domain/endpoint_health.py) and how the engine applies
them, on the fake repository, HTTP and publisher of test_delivery_engine.py (unit tests of
the engine's logic: the real thing runs in tests/pipeline/test_endpoint_health.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.delivery.engine import Outcome
from libs.delivery.http_client import HttpResult
from libs.domain import endpoint_health
from libs.domain.endpoint_health import HealthPolicy
from libs.infra.broker.messages import DeliveryStep
from tests.support import engine_fakes as fakes
from tests.support.factories import sender_delivery_row as delivery_row

GONE = HttpResult(False, 410, "HTTP 410", "gone", 5)
THROTTLED = HttpResult(False, 429, "HTTP 429", "slow", 5)


@pytest.mark.parametrize(
    ("status", "reason", "parks"),
    [
        ("ACTIVE", None, False),
        ("INACTIVE", "ENDPOINT_GONE", True),
        ("INACTIVE", "FAILING", True),
        ("INACTIVE", None, True),  # switched off by its user: kept too
        ("INACTIVE", "PLAN_DOWNGRADE", False),  # SPEC §3: nothing is recorded
    ],
)
def test_which_endpoints_park(status: str, reason: str | None, parks: bool) -> None:
    assert endpoint_health.parks(status, reason) is parks


def test_what_an_attempt_says_of_its_endpoint() -> None:
    assert endpoint_health.attempt_effect(True, 200) is False
    assert endpoint_health.attempt_effect(False, 500) is True
    assert endpoint_health.attempt_effect(False, None) is True  # timeout, refused
    assert endpoint_health.attempt_effect(False, 429) is None


def test_failing_takes_both_the_period_and_the_dead_count() -> None:
    policy = HealthPolicy(timedelta(days=5), 3)
    long_ago, lately = fakes.NOW - timedelta(days=6), fakes.NOW - timedelta(days=1)
    assert endpoint_health.is_failing(long_ago, 3, fakes.NOW, policy)
    assert not endpoint_health.is_failing(long_ago, 2, fakes.NOW, policy)
    assert not endpoint_health.is_failing(lately, 30, fakes.NOW, policy)
    assert not endpoint_health.is_failing(None, 30, fakes.NOW, policy)


async def test_a_410_disables_the_endpoint_and_parks_the_delivery() -> None:
    repo, http, retries = fakes.Repo(delivery_row()), fakes.Http(GONE), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    assert repo.disabled == [("dst_unit", "ENDPOINT_GONE")]
    [record] = repo.recorded
    assert (record.new_status, record.next_attempt_at) == ("PARKED", None)
    assert retries.published == []  # no retry: nothing left to come


@pytest.mark.parametrize(
    ("result", "effect"), [(fakes.OK, False), (fakes.FAIL_500, True), (THROTTLED, None)]
)
async def test_each_attempt_is_recorded_with_its_health_effect(
    result: HttpResult, effect: bool | None
) -> None:
    repo, http, retries = fakes.Repo(delivery_row()), fakes.Http(result), fakes.Retries()
    await fakes.engine(repo, http, retries).attempt(fakes.step(1))
    assert repo.recorded[0].endpoint_failed is effect


async def test_an_inactive_endpoints_delivery_is_parked_unsent() -> None:
    row = delivery_row(endpoint_status="INACTIVE", deactivated_reason="FAILING")
    repo, http, retries = fakes.Repo(row), fakes.Http(fakes.OK), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    assert repo.parked == [fakes.TASK.delivery_id]
    assert http.calls == [] and repo.recorded == [] and retries.published == []


async def test_a_plan_downgrade_or_a_test_call_is_not_parked() -> None:
    row = delivery_row(endpoint_status="INACTIVE", deactivated_reason="PLAN_DOWNGRADE")
    repo, http = fakes.Repo(row), fakes.Http(fakes.OK)
    await fakes.engine(repo, http, fakes.Retries()).attempt(fakes.step(1))
    assert repo.parked == [] and len(http.calls) == 1
    row = delivery_row(endpoint_status="INACTIVE", deactivated_reason="FAILING")
    repo, http = fakes.Repo(row), fakes.Http(fakes.OK)
    test_call = DeliveryStep(fakes.TASK.model_copy(update={"type": "webhook.test"}), 1, 1)
    await fakes.engine(repo, http, fakes.Retries()).attempt(test_call)
    assert repo.parked == [] and len(http.calls) == 1


async def test_dead_deliveries_disable_a_failing_endpoint_only_past_both_bounds() -> None:
    repo = fakes.Repo(delivery_row(), failing_since=fakes.NOW - timedelta(days=6))
    runner = fakes.engine(repo, fakes.Http(fakes.OK), fakes.Retries())
    runner.health = HealthPolicy(timedelta(days=5), 2)
    assert await runner.bury(fakes.TASK) is Outcome.SETTLED
    assert repo.disabled == []  # one DEAD delivery in a row
    await runner.bury(fakes.TASK)
    assert repo.disabled == [("ep_1", "FAILING")]
    recent = fakes.Repo(
        delivery_row(), failing_since=fakes.NOW - timedelta(days=1), dead_in_a_row=9
    )
    runner = fakes.engine(recent, fakes.Http(fakes.OK), fakes.Retries())
    runner.health = HealthPolicy(timedelta(days=5), 2)
    await runner.bury(fakes.TASK)
    assert recent.disabled == []
