"""A batch message in the dispatcher's handler (fakes for Postgres and the broker): each
event handled as its own message would be; bad ones set aside only once the good ones are
settled, and any requeue takes the whole message back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from libs.worker.consumers import Verdict
from services.dispatcher.handler import Dispatcher
from tests.pipeline.test_dispatcher_units import NOW, FakeDispatchRepo, FakePublisher, context
from tests.pipeline.test_dispatcher_units import event as event_body


def items(*ids: str) -> list[Any]:
    return [orjson.loads(event_body(event_id=event_id)) for event_id in ids]


class SetAside:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[Any]] = []

    async def __call__(self, bad: Sequence[Any]) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.calls.append(list(bad))


def dispatcher(
    repo: FakeDispatchRepo, publisher: FakePublisher, set_aside: SetAside | None
) -> Dispatcher:
    options: dict[str, Any] = {"pending_limit": 3, "payload_cap_bytes": 1024, "now": lambda: NOW}
    return Dispatcher(repo, publisher, set_aside=set_aside, **options)


async def test_good_events_are_dispatched_and_bad_ones_set_aside_alone() -> None:
    repo = FakeDispatchRepo(context(), contexts={"evt_stranger": None})  # an unknown org
    publisher, set_aside = FakePublisher(), SetAside()
    malformed = {"id": "evt_bad", "type": "mapping.completed"}
    body = items("evt_1", "evt_stranger", "evt_2")
    body.insert(1, malformed)
    verdict = await dispatcher(repo, publisher, set_aside).handle(orjson.dumps(body))
    assert verdict is Verdict.ACK
    assert sorted(t.event_id for t in publisher.tasks) == ["evt_1", "evt_2"]
    assert sorted(repo.marked) == ["evt_1", "evt_2"]
    [bad] = set_aside.calls
    assert sorted(item["id"] for item in bad) == ["evt_bad", "evt_stranger"]
    assert malformed in bad


async def test_a_requeued_event_takes_the_whole_message_back_and_sets_nothing_aside() -> None:
    repo, set_aside = FakeDispatchRepo(context(), contexts={"evt_stranger": None}), SetAside()
    publisher = FakePublisher(fail_events={"evt_2"})
    body = orjson.dumps(items("evt_1", "evt_2", "evt_stranger"))
    assert await dispatcher(repo, publisher, set_aside).handle(body) is Verdict.REQUEUE
    assert set_aside.calls == []  # on the redelivery that settles, once


async def test_bad_events_that_cannot_be_set_aside_requeue_or_poison_the_message() -> None:
    body = orjson.dumps([*items("evt_1"), {"id": "evt_bad"}])
    repo = FakeDispatchRepo(context())
    failing = dispatcher(repo, FakePublisher(), SetAside(fail=True))
    assert await failing.handle(body) is Verdict.REQUEUE
    without = dispatcher(FakeDispatchRepo(context()), FakePublisher(), None)
    assert await without.handle(body) is Verdict.REJECT


async def test_not_a_batch_of_1_to_500_is_rejected_whole() -> None:
    set_aside = SetAside()
    d = dispatcher(FakeDispatchRepo(context()), FakePublisher(), set_aside)
    for body in (b"[]", b"[{", orjson.dumps(items(*(f"evt_{n}" for n in range(501))))):
        assert await d.handle(body) is Verdict.REJECT
    assert set_aside.calls == []
