"""The delivery engine's logic, with fakes in place of Postgres, the broker and HTTP (no
services needed): headers, signatures, send-time SSRF checks, and what an
attempt does with each answer."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from libs.delivery.engine import Outcome
from libs.delivery.http_client import (
    HttpClient,
    HttpResult,
    SafeResolver,
    read_excerpt,
)
from libs.delivery.limits import INITIAL, EndpointLimits
from libs.delivery.repository import DeliveryRow
from libs.delivery.request import customer_headers
from libs.delivery.signatures import SigningKeys, UnsupportedSignatureScheme, signature_headers
from libs.domain.signing import verify_standard_webhooks, verify_v1
from libs.infra.broker.messages import DeliveryStep
from libs.infra.url_safety import SafetyPolicy, UnsafeURLError
from tests.support import engine_fakes as fakes
from tests.support.factories import sender_delivery_row as delivery_row

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


# ---------------------------------------------------------------- the engine's attempts


async def test_success_records_attempt_one_under_the_delivery_id() -> None:
    repo, http, retries = fakes.Repo(delivery_row()), fakes.Http(fakes.OK), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    [(url, body, sent)] = http.calls
    assert url == "https://hooks.example.com/x?token=abc"
    assert sent["X-Webhook-Delivery"] == fakes.TASK.delivery_id
    verify_v1(body, sent["X-Webhook-Signature"], "whsec_unit")
    [record] = repo.recorded
    assert (record.attempt_id, record.new_status, record.attempt_number) == (
        fakes.TASK.delivery_id,
        "SUCCEEDED",
        1,
    )
    assert retries.published == []


async def test_first_attempts_of_new_deliveries_post_without_reading_them() -> None:
    repo, http, retries = fakes.Repo(None), fakes.Http(fakes.OK), fakes.Retries()
    other = fakes.TASK.model_copy(update={"delivery_id": "del_2", "endpoint_id": "dest_2"})
    outcomes = await fakes.engine(repo, http, retries).first_attempts([fakes.TASK, other])
    assert outcomes == [Outcome.SETTLED, Outcome.SETTLED] and repo.loads == 0
    assert repo.new == [fakes.TASK, other]
    assert [(a.delivery_id, a.attempt_number) for a in repo.recorded] == [
        (fakes.TASK.delivery_id, 1),
        ("del_2", 1),
    ]
    assert [sent["X-Webhook-Delivery"] for _, _, sent in http.calls] == [
        fakes.TASK.delivery_id,
        "del_2",
    ]


async def test_a_failed_first_attempt_publishes_its_retry_with_the_task() -> None:
    repo, http, retries = fakes.Repo(None), fakes.Http(fakes.FAIL_500), fakes.Retries()
    assert await fakes.engine(repo, http, retries).first_attempts([fakes.TASK]) == [Outcome.SETTLED]
    assert retries.scheduled == [(60, 2, 1)] and retries.published[0].task == fakes.TASK


async def test_failure_with_attempts_left_publishes_the_next_tier() -> None:
    repo = fakes.Repo(delivery_row(attempt_count=1))
    http, retries = fakes.Http(fakes.FAIL_500), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(2)) is Outcome.SETTLED
    [(_, _, sent)] = http.calls
    [record] = repo.recorded
    assert sent["X-Webhook-Delivery"] == record.attempt_id != fakes.TASK.delivery_id
    assert record.new_status == "PENDING"
    assert record.next_attempt_at is not None and record.next_attempt_at > fakes.NOW
    assert retries.scheduled == [(300, 3, 1)]


async def test_a_short_database_outage_is_ridden_out_without_posting_again() -> None:
    repo, http, retries = (
        fakes.Repo(delivery_row(), record_failures=2),
        fakes.Http(fakes.OK),
        fakes.Retries(),
    )
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    assert len(http.calls) == 1 and len(repo.recorded) == 1
    repo, http = fakes.Repo(delivery_row(), record_failures=99), fakes.Http(fakes.OK)
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.UNSETTLED
    assert len(http.calls) == 1


async def test_a_retry_that_cannot_be_published_is_unsettled() -> None:
    repo, http = fakes.Repo(delivery_row()), fakes.Http(fakes.FAIL_500)
    outcome = await fakes.engine(repo, http, fakes.Retries(fail=True)).attempt(fakes.step(1))
    assert outcome is Outcome.UNSETTLED


async def test_no_attempts_left_is_a_dead_letter_due_at_once() -> None:
    repo, http, retries = (
        fakes.Repo(delivery_row(attempt_count=3)),
        fakes.Http(fakes.FAIL_500),
        fakes.Retries(),
    )
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(4)) is Outcome.DEAD_LETTER
    assert retries.published == [] and repo.recorded[0].new_status == "PENDING"
    # due now: if its dead letter is lost, the reconciler finds it overdue
    assert repo.recorded[0].next_attempt_at == fakes.NOW


async def test_an_ended_delivery_is_due_no_more() -> None:
    repo = fakes.Repo(delivery_row())
    assert (
        await fakes.engine(repo, fakes.Http(fakes.OK), fakes.Retries()).attempt(fakes.step(1))
        is Outcome.SETTLED
    )
    assert repo.recorded[0].next_attempt_at is None


async def test_bury_marks_dead_and_is_unsettled_while_the_database_is_away() -> None:
    repo = fakes.Repo(delivery_row())
    assert (
        await fakes.engine(repo, fakes.Http(fakes.OK), fakes.Retries()).bury(fakes.TASK)
        is Outcome.SETTLED
    )
    assert repo.dead == [fakes.TASK.delivery_id]
    repo = fakes.Repo(delivery_row(), record_failures=1)
    assert (
        await fakes.engine(repo, fakes.Http(fakes.OK), fakes.Retries()).bury(fakes.TASK)
        is Outcome.UNSETTLED
    )


async def test_a_redelivered_recorded_attempt_redoes_only_the_next_step() -> None:
    row = delivery_row(
        attempt_count=1,
        recorded_succeeded=False,
        recorded_http_status=500,
        next_attempt_at=fakes.NOW + timedelta(seconds=1),
    )
    repo, http, retries = fakes.Repo(row), fakes.Http(fakes.OK), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    assert http.calls == [] and repo.recorded == []
    assert retries.scheduled == [(60, 2, 1)] and retries.now == []


async def test_a_recorded_attempt_whose_retry_is_overdue_sends_the_next_one_at_once() -> None:
    """A re-driven step (the reconciler's) finds its retry already due: no second wait."""
    row = delivery_row(
        attempt_count=1,
        recorded_succeeded=False,
        recorded_http_status=500,
        next_attempt_at=fakes.NOW,
    )
    repo, http, retries = fakes.Repo(row), fakes.Http(fakes.OK), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(1)) is Outcome.SETTLED
    assert http.calls == [] and retries.published == []
    assert retries.now == [DeliveryStep(fakes.TASK, 2, 1)]


async def test_a_step_without_our_headers_takes_its_attempt_from_the_row() -> None:
    repo = fakes.Repo(delivery_row(attempt_count=1))
    http, retries = fakes.Http(fakes.FAIL_500), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(DeliveryStep(fakes.TASK, None, None))
    assert [a.attempt_number for a in repo.recorded] == [2]
    assert retries.scheduled == [(300, 3, 1)]


@pytest.mark.parametrize(
    "row",
    [
        None,
        delivery_row(status="SUCCEEDED"),
        delivery_row(status="DEAD"),
        delivery_row(attempt_count=3),
    ],
)
async def test_gone_finished_and_stale_steps_are_settled_untouched(row: DeliveryRow | None) -> None:
    repo, http, retries = fakes.Repo(row), fakes.Http(fakes.OK), fakes.Retries()
    assert await fakes.engine(repo, http, retries).attempt(fakes.step(2)) is Outcome.SETTLED
    assert http.calls == [] and repo.recorded == [] and retries.published == []


async def test_a_manual_retry_whose_reopen_has_not_committed_yet_is_waited_for() -> None:
    # The api publishes the retry (attempt 5, new schedule from 5) before its transaction
    # commits: the first read still sees DEAD. The attempt must be sent, not skipped.
    dead = delivery_row(status="DEAD", attempt_count=4, schedule_start=1)
    repo = fakes.Repo(dead, committed_row=replace(dead, status="PENDING", schedule_start=5))
    http = fakes.Http(fakes.OK)
    assert (
        await fakes.engine(repo, http, fakes.Retries()).attempt(fakes.step(5, 5)) is Outcome.SETTLED
    )
    assert repo.awaited_writers == 1 and len(http.calls) == 1
    assert [(a.attempt_number, a.new_status) for a in repo.recorded] == [(5, "SUCCEEDED")]


async def test_a_manual_retry_that_rolled_back_is_skipped() -> None:
    dead = delivery_row(status="DEAD", attempt_count=4, schedule_start=1)
    repo = fakes.Repo(dead)  # the reopen never commits: the row stays DEAD
    http = fakes.Http(fakes.OK)
    assert (
        await fakes.engine(repo, http, fakes.Retries()).attempt(fakes.step(5, 5)) is Outcome.SETTLED
    )
    assert repo.awaited_writers == 1 and http.calls == [] and repo.recorded == []


async def test_an_endpoint_without_room_gets_the_step_back_later_with_no_attempt_made() -> None:
    limits = EndpointLimits(1000)
    for _ in range(int(INITIAL)):  # the initial limit of attempts in flight to dst_unit
        assert limits.try_acquire("dst_unit") is None
    repo, http, retries = (
        fakes.Repo(delivery_row(attempt_count=1)),
        fakes.Http(fakes.OK),
        fakes.Retries(),
    )
    assert await fakes.engine(repo, http, retries, limits).attempt(fakes.step(2)) is Outcome.SETTLED
    assert http.calls == [] and repo.recorded == []
    assert retries.deferred == [
        (DeliveryStep(fakes.TASK, 2, 1), 1)
    ]  # the same attempt, in a second
    limits.release("dst_unit", fakes.OK)
    assert await fakes.engine(repo, http, retries, limits).attempt(fakes.step(2)) is Outcome.SETTLED
    assert len(http.calls) == 1 and repo.recorded[0].attempt_number == 2


async def test_a_step_deferred_well_past_its_due_time_moves_it_so_it_is_not_re_driven() -> None:
    clock = [100.0]
    limits = EndpointLimits(1000, clock=lambda: clock[0])
    throttled = HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=3600)
    await fakes.engine(
        fakes.Repo(delivery_row()), fakes.Http(throttled), fakes.Retries(), limits
    ).attempt(fakes.step(1))  # the endpoint holds everything back for an hour
    due_now = fakes.Repo(delivery_row(next_attempt_at=fakes.NOW))
    retries = fakes.Retries()
    await fakes.engine(due_now, fakes.Http(fakes.OK), retries, limits).attempt(fakes.step(1))
    assert retries.deferred == [(DeliveryStep(fakes.TASK, 1, 1), 3600)]
    assert due_now.postponed == [fakes.NOW + timedelta(seconds=3600)]
    # a short wait leaves the due time alone: no statement for the usual deferral
    limits = EndpointLimits(1000, clock=lambda: clock[0])
    throttled = HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=30)
    await fakes.engine(
        fakes.Repo(delivery_row()), fakes.Http(throttled), fakes.Retries(), limits
    ).attempt(fakes.step(1))
    briefly = fakes.Repo(delivery_row(next_attempt_at=fakes.NOW))
    await fakes.engine(briefly, fakes.Http(fakes.OK), fakes.Retries(), limits).attempt(
        fakes.step(1)
    )
    assert briefly.postponed == []


async def test_a_retry_after_holds_the_whole_endpoint_back() -> None:
    clock = [100.0]
    limits = EndpointLimits(1000, clock=lambda: clock[0])
    throttled = HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=30)
    repo, retries = fakes.Repo(delivery_row()), fakes.Retries()
    await fakes.engine(repo, fakes.Http(throttled), retries, limits).attempt(fakes.step(1))
    assert retries.published == [DeliveryStep(fakes.TASK, 2, 1)] and retries.delays == [30]
    assert retries.exact_waits == [30]  # the receiver's wait, kept as said
    assert repo.recorded[0].next_attempt_at == fakes.NOW + timedelta(seconds=30 * 0.01)  # scaled
    other = fakes.Repo(delivery_row())  # another delivery to the same endpoint, meanwhile
    await fakes.engine(other, fakes.Http(fakes.OK), retries, limits).attempt(fakes.step(1))
    assert other.recorded == [] and retries.deferred == [(DeliveryStep(fakes.TASK, 1, 1), 30)]
    clock[0] += 30
    await fakes.engine(other, fakes.Http(fakes.OK), retries, limits).attempt(fakes.step(1))
    assert other.recorded[0].new_status == "SUCCEEDED"
