"""The recording receiver's behaviours, in-process, against a real HTTP client."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import orjson
import pytest

from harness.receiver import (
    NO_ANSWER,
    Endless,
    FailFirstArrival,
    Flaky,
    Receiver,
    Redirect,
    RetryAfter,
    Slow,
    Status,
)
from harness.receiver.behaviours import Ok, Scripted, parse


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, event_id: str = "evt_1"
) -> tuple[int, str, dict[str, str]]:
    body = orjson.dumps({"eventId": event_id})
    headers = {"X-Webhook-Delivery": "del_1"}
    async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
        return response.status, await response.text(), dict(response.headers)


async def test_a_path_nobody_scripted_answers_200_and_is_recorded_whole(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    status, text, _ = await post(http, receiver.url("/plain?x=1"))
    assert (status, text) == (200, "ok")
    [request] = receiver.on("/plain")
    assert request.json() == {"eventId": "evt_1"} and request.query == "x=1"
    assert request.headers["X-Webhook-Delivery"] == "del_1"
    [record] = receiver.records
    assert (record.path, record.group, record.event_id, record.delivery_id, record.status) == (
        "/plain",
        "plain",
        "evt_1",
        "del_1",
        200,
    )
    assert record.answered is not None and record.answered >= record.arrived


async def test_a_script_answers_in_turn_and_repeats_its_last_status(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.script("/s", [500, 503, 200])
    answers = [(await post(http, url))[:2] for _ in range(4)]
    assert answers == [
        (500, "scripted failure"),
        (503, "scripted failure"),
        (200, "ok"),
        (200, "ok"),
    ]
    assert [r.status for r in receiver.records] == [500, 503, 200, 200]


async def test_slow_answers_after_its_delay(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/slow", Slow(0.3))
    started = time.monotonic()
    assert (await post(http, url))[0] == 200
    assert time.monotonic() - started >= 0.3


async def test_an_answer_nobody_waited_for_is_recorded_as_no_answer(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/hang", Slow(0.5))
    with pytest.raises(TimeoutError):
        async with http.post(url, data=b"{}", timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    [record] = receiver.records
    assert record.status == NO_ANSWER and record.answered is None  # not answered yet
    await asyncio.sleep(0.6)
    assert record.status == NO_ANSWER and record.answered is not None  # nobody was there


async def test_gone_is_410_every_time(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    url = receiver.behave("/gone", Status(410))
    assert [(await post(http, url))[0] for _ in range(3)] == [410, 410, 410]


async def test_flaky_fails_at_its_rate_and_repeats_with_its_seed(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    first = receiver.behave("/flaky-a", Flaky(0.3, seed=4))
    again = receiver.behave("/flaky-b", Flaky(0.3, seed=4))
    a = [(await post(http, first))[0] for _ in range(100)]
    b = [(await post(http, again))[0] for _ in range(100)]
    assert a == b  # the same seed, the same sequence
    assert set(a) == {200, 500}
    assert 15 <= a.count(500) <= 45


async def test_fail_first_arrival_fails_each_event_once(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/first", FailFirstArrival())
    statuses = [(await post(http, url, event))[0] for event in ("e1", "e1", "e2", "e1", "e2")]
    assert statuses == [500, 200, 500, 200, 200]


async def test_retry_after_in_seconds_then_200(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/busy", RetryAfter(2, times=2))
    answers = [await post(http, url) for _ in range(3)]
    assert [(s, h.get("Retry-After")) for s, _, h in answers] == [
        (429, "2"),
        (429, "2"),
        (200, None),
    ]


async def test_retry_after_as_an_http_date(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    url = receiver.behave("/busy-date", RetryAfter(30, http_date=True))
    status, _, headers = await post(http, url)
    assert status == 429
    when = parsedate_to_datetime(headers["Retry-After"]).timestamp()
    assert 28 <= when - time.time() <= 31


async def test_an_endless_flood_streams_until_the_client_hangs_up(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/flood/1", Endless.flood())
    async with http.post(url, data=b"{}") as response:
        assert response.status == 500
        read = 0
        while read < 4 * 2**20:  # far more than any one response is allowed to be
            read += len(await response.content.read(2**16))
    await asyncio.sleep(0.3)  # the receiver notices the hang-up and stops writing
    [streamed] = receiver.streamed("/flood")
    assert 4 * 2**20 <= streamed < 64 * 2**20
    await asyncio.sleep(0.3)
    assert receiver.streamed("/flood") == [streamed]


async def test_an_endless_trickle_never_finishes_its_body(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.behave("/trickle", Endless.trickle())
    timeout = aiohttp.ClientTimeout(total=0.9)
    with pytest.raises(TimeoutError):
        async with http.post(url, data=b"{}", timeout=timeout) as response:
            assert response.status == 200
            await response.read()
    assert 1 <= receiver.streamed("/trickle")[0] <= 6


async def test_a_redirect_points_elsewhere(receiver: Receiver, http: aiohttp.ClientSession) -> None:
    url = receiver.behave("/moved", Redirect(307, receiver.url("/landing")))
    status, _, headers = await post(http, url)
    assert (status, headers["Location"]) == (307, receiver.url("/landing"))
    assert receiver.on("/landing") == []


async def test_wait_for_returns_the_requests_or_times_out(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    url = receiver.url("/w")
    waiting = asyncio.create_task(receiver.wait_for("/w", 2, timeout=5))
    await post(http, url)
    await post(http, url, "evt_2")
    assert [r.json()["eventId"] for r in await waiting] == ["evt_1", "evt_2"]
    with pytest.raises(TimeoutError):
        await receiver.wait_for("/w", 3, timeout=0.2)


async def test_tls_with_its_own_certificate(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    server = await Receiver(tls_dir=tmp_path).start()
    try:
        assert server.url("/x").startswith("https://") and server.ca_path is not None
        trusted = ssl.create_default_context(cafile=str(server.ca_path))
        async with http.post(server.url("/x"), data=b"{}", ssl=trusted) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.post(server.url("/x"), data=b"{}"):
                pass
        assert len(server.on("/x")) == 1
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ok", Ok()),
        ("status:410", Status(410)),
        ("slow:0.2", Slow(0.2)),
        ("first-fails", FailFirstArrival()),
        ("retry-after:2", RetryAfter(2)),
        ("retry-after-date:3", RetryAfter(3, http_date=True)),
        ("endless-flood", Endless.flood()),
        ("endless-trickle", Endless.trickle()),
        ("script:500,200", Scripted([500, 200])),
    ],
)
def test_specs_name_the_behaviours(spec: str, expected: object) -> None:
    assert parse(spec) == expected


def test_a_flaky_spec_takes_the_seed_and_an_unknown_spec_is_refused() -> None:
    flaky = parse("flaky:0.3", seed=7)
    assert isinstance(flaky, Flaky) and (flaky.rate, flaky.seed) == (0.3, 7)
    with pytest.raises(ValueError, match="unknown receiver behaviour"):
        parse("sometimes")
