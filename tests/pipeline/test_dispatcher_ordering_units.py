"""The dispatcher's part in ordered delivery, with fakes in place of Postgres and the broker
(unit tests; the pipeline is tests/pipeline/test_ordering.py): which deliveries wait in line,
and that a dispatched keyed event releases its key, and nothing else asks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from libs.infra.broker.messages import DeliveryStep, EventMessage
from libs.worker.consumers import Verdict
from services.dispatcher.batch import _planned
from services.dispatcher.handler import Dispatcher
from services.dispatcher.rows import EventContext
from tests.pipeline.test_dispatcher_units import (
    NOW,
    FakeDispatchRepo,
    FakePublisher,
    context,
    event,
)
from tests.support.factories import delivery_task

NEXT = delivery_task(delivery_id="del_next", ordering_key="k")


@dataclass
class FakeReleases:
    released: list[set[tuple[str, str]]] = field(default_factory=list)

    async def release_keys(self, keys: Iterable[tuple[str, str]]) -> list[DeliveryStep]:
        self.released.append(set(keys))
        return [DeliveryStep(NEXT)]


def ordered_context(ordered: frozenset[str] = frozenset({"dest_1"})) -> EventContext:
    return replace(context(endpoints=["dest_1", "dest_2"]), ordered_endpoint_ids=ordered)


def dispatcher(
    repo: FakeDispatchRepo, publisher: FakePublisher, releases: FakeReleases
) -> Dispatcher:
    return Dispatcher(
        repo, publisher, pending_limit=3, payload_cap_bytes=1024, now=lambda: NOW, releases=releases
    )


def test_only_an_ordered_endpoint_s_delivery_of_a_keyed_event_waits_in_line() -> None:
    keyed = EventMessage.model_validate_json(event(ordering_key="k"))
    planned = _planned(keyed, ordered_context())
    assert planned.keys() == ["k", None]
    assert _planned(keyed, ordered_context(frozenset())).ordering_keys is None
    plain = EventMessage.model_validate_json(event())
    assert _planned(plain, context(endpoints=["dest_1", "dest_2"])).keys() == [None, None]


async def test_a_dispatched_keyed_event_releases_its_key_and_sends_what_goes() -> None:
    repo, publisher, releases = FakeDispatchRepo(ordered_context()), FakePublisher(), FakeReleases()
    verdict = await dispatcher(repo, publisher, releases).handle(event(ordering_key="k"))
    assert verdict is Verdict.ACK
    assert releases.released == [{("org_1", "k")}]
    # dest_2 (unordered) went at once (this fake inserts every planned delivery as it
    # comes); the delivery the release promoted is published too
    assert "del_next" in {t.delivery_id for t in publisher.tasks}


async def test_no_release_without_a_key_or_without_ordered_endpoints() -> None:
    releases = FakeReleases()
    for repo, body in (
        (FakeDispatchRepo(ordered_context()), event()),
        (FakeDispatchRepo(ordered_context(frozenset())), event(ordering_key="k")),
    ):
        assert await dispatcher(repo, FakePublisher(), releases).handle(body) is Verdict.ACK
    assert releases.released == []


async def test_a_redelivered_dispatched_keyed_event_releases_its_key_again() -> None:
    """Its first dispatch may have died between the mark and the release."""
    repo = FakeDispatchRepo(replace(ordered_context(), dispatched_at=NOW))
    releases = FakeReleases()
    body = event(ordering_key="k")
    assert await dispatcher(repo, FakePublisher(), releases).handle(body, redelivered=True) is (
        Verdict.ACK
    )
    assert releases.released == [{("org_1", "k")}]
