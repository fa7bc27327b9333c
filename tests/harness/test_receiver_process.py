"""The receiver as its own process: routes by group, and what the bench and chaos read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from harness.process import Process
from harness.receiver import NO_ANSWER, ReceiverClient
from harness.receiver.standalone import spawn

ROUTES = {"flaky": "first-fails", "gone": "status:410", "slow": "slow:0.5"}


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = spawn(tmp_path_factory.mktemp("receiver"), ROUTES, seed=4)
    proc.start(ready_path="/stats")
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_tail()


@pytest.fixture
async def client(process: Process) -> AsyncIterator[ReceiverClient]:
    async with aiohttp.ClientSession() as session:
        yield ReceiverClient(session, process.url())


async def post(client: ReceiverClient, path: str, event_id: str, timeout: float = 5) -> int:
    async with client.session.post(
        client.url(path),
        data=orjson.dumps({"eventId": event_id}),
        headers={"X-Webhook-Delivery": f"del_{event_id}"},
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        return response.status


async def test_groups_answer_as_routed_and_are_counted(client: ReceiverClient) -> None:
    statuses = [
        await post(client, path, event)
        for path, event in [
            ("/ok/a", "e1"),
            ("/flaky/1", "e1"),
            ("/flaky/1", "e1"),
            ("/gone/x", "e2"),
            ("/other/9", "e3"),
        ]
    ]
    assert statuses == [200, 500, 200, 410, 200]
    assert await client.stats() == {"ok": 1, "flaky": 2, "gone": 1, "other": 1}
    flaky = await client.records("flaky")
    assert [(r.path, r.event_id, r.delivery_id, r.status) for r in flaky] == [
        ("/flaky/1", "e1", "del_e1", 500),
        ("/flaky/1", "e1", "del_e1", 200),
    ]
    assert all(r.answered is not None and r.peer_port > 0 for r in flaky)
    assert len(await client.records()) == 5


async def test_seen_tells_when_an_event_was_first_answered_2xx(client: ReceiverClient) -> None:
    assert await client.ok_at("/ok/probe", "p1") is None
    await post(client, "/ok/probe", "p1")
    first = await client.ok_at("/ok/probe", "p1")
    await post(client, "/ok/probe", "p1")
    assert first is not None and await client.ok_at("/ok/probe", "p1") == first
    await post(client, "/gone/probe", "p2")
    assert await client.ok_at("/gone/probe", "p2") is None


async def test_a_request_the_client_gave_up_on_is_kept_as_no_answer(
    client: ReceiverClient,
) -> None:
    with pytest.raises(TimeoutError):
        await post(client, "/slow/1", "late", timeout=0.1)
    [record] = [r for r in await client.records("slow") if r.event_id == "late"]
    assert record.status == NO_ANSWER  # recorded on arrival, before any answer
    await asyncio.sleep(0.6)
    [record] = [r for r in await client.records("slow") if r.event_id == "late"]
    assert record.status == NO_ANSWER and record.answered is not None


def test_the_log_is_where_spawn_said(process: Process) -> None:
    assert isinstance(process.log_path, Path) and process.log_path.exists()
