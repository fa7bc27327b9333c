"""Deliveries of an ordered line reopened by hand keep the line's order (issue 19, 5): the
api, a dispatcher and a sender as real processes, a real receiver judging the order.

A manual retry (`POST /api/v1/deliveries/{id}/retry`) of a DEAD delivery whose line has a
head in flight waits HELD until that head ends, then goes before the line's later ones; a
recover of several deliveries of one line sends them one at a time, in line order. The
rule: libs/delivery/ordering.py `rejoin`; the api's side: services/api/deliveries/
reopening.py. Retry tiers are scaled by 0.01 (1m → 0.6 s, 5m → 3 s, 30m → 18 s).

A delivery that went DEAD is written straight into the database (with its four attempts
counted): its own schedule at this scale takes some 22 s, and is not what is tested here.

A line whose head is parked at send time (its endpoint went INACTIVE while the head waited
for a retry) is released by the engine that parked it: the rest of the line is parked in
turn at once. The reconciler, which also releases lines it finds stuck, looks here only
once an hour, for lines stuck for an hour: it rescues nothing within these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from harness.receiver import Receiver
from harness.waiting import eventually
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import EventMessage
from tests.pipeline.test_ordering import ORDERED, Failing, accept, assert_in_line, statuses
from tests.support.factories import attempts_of, make_endpoint
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

KEY = "customer-7"
# The reconciler rescues no line within a test (see the top): what moves a line is the engine.
NO_RESCUE = {"HOOKPOST_RECONCILE_INTERVAL_S": "3600", "HOOKPOST_REDRIVE_DELIVERIES_AFTER_S": "3600"}
PROMPTLY_S = 15.0  # the head's retries here: 0.6 s, then 3 s


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    async with Pipeline(test_env, "ordretry", **NO_RESCUE) as pipe:
        await pipe.stack.start(api=True, dispatchers=1, senders=1)
        yield pipe


class Line:
    """One org's ordered endpoint on the receiver, and the api as that org."""

    def __init__(self, api: httpx.AsyncClient, pool: asyncpg.Pool, org_id: str) -> None:
        self.api, self.pool, self.org_id = api, pool, org_id
        self.behaviour = Failing()
        self.endpoint_id = ""

    async def dead(self) -> tuple[EventMessage, str]:
        """An event of the line, dispatched, whose delivery went DEAD after four attempts."""
        event = await accept(self.pool, self.org_id, KEY)
        delivery_id = new_id(IdPrefix.DELIVERY)
        await self.pool.execute("UPDATE events SET dispatched_at = now() WHERE id = $1", event.id)
        await self.pool.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
            " ordering_key, attempt_count) VALUES ($1, $2, $3, $4, 'DEAD', $5, 4)",
            delivery_id,
            event.id,
            self.endpoint_id,
            self.org_id,
            KEY,
        )
        return event, delivery_id

    async def switch(self, status: str) -> None:
        """The endpoint ACTIVE or INACTIVE, as its user leaves it (no deactivated reason);
        the engines' endpoint caches hear of it when it commits."""
        await self.pool.execute(
            "UPDATE endpoints SET status = $2, deactivated_reason = NULL WHERE id = $1",
            self.endpoint_id,
            status,
        )


@pytest.fixture
async def line(
    platform: Pipeline, make_org, forget_orgs, db_pool: asyncpg.Pool, receiver: Receiver
) -> AsyncIterator[Line]:
    org = await make_org()
    forget_orgs(org.organizationId)
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    async with httpx.AsyncClient(
        base_url=platform.stack.api_url, headers=headers, timeout=10
    ) as api:
        made = Line(api, db_pool, org.organizationId)
        url = receiver.behave("/line", made.behaviour)
        endpoint = await make_endpoint(db_pool, org.organizationId, url, config=ORDERED)
        made.endpoint_id = endpoint.id
        yield made


async def test_a_retried_delivery_waits_for_its_lines_head_then_goes_in_order(
    platform: Pipeline, line: Line, receiver: Receiver
) -> None:
    dead, dead_id = await line.dead()
    head = await accept(line.pool, line.org_id, KEY)
    later = await accept(line.pool, line.org_id, KEY)
    line.behaviour.always.add(head.id)  # the head fails until the test lets it through
    for event in (head, later):
        await platform.publish(event)
    await eventually(
        lambda: statuses(line.pool, [dead, head, later]),
        lambda found: (
            found == ["DEAD", "PENDING", "HELD"]
            and any(r.event_id == head.id for r in receiver.records)
        ),
    )

    response = await line.api.post(f"/api/v1/deliveries/{dead_id}/retry")
    assert response.status_code == 202, response.text
    assert response.json() == {"deliveryId": dead_id, "status": "PENDING"}  # as documented
    # Committed before the answer: it waits behind the head, its new schedule kept.
    assert await statuses(line.pool, [dead, head, later]) == ["HELD", "PENDING", "HELD"]

    # The signal: the head is attempted again after the retry; the retried one is not sent.
    head_arrivals = arrivals(receiver, head.id)

    async def head_attempts() -> int:
        return arrivals(receiver, head.id)

    await eventually(head_attempts, lambda count: count > head_arrivals, timeout=30)
    assert arrivals(receiver, dead.id) == 0
    assert await statuses(line.pool, [dead]) == ["HELD"]

    line.behaviour.always.clear()
    await eventually(
        lambda: statuses(line.pool, [dead, head, later]),
        lambda found: found == ["SUCCEEDED"] * 3,
        timeout=60,
    )
    # The head, then the retried one (first of the line by event order), then the later one.
    assert_in_line(receiver.records, [head.id, dead.id, later.id])
    [attempt] = await attempts_of(line.pool, dead_id)
    assert attempt["attempt_number"] == 5 and attempt["succeeded"] is True


async def test_a_recover_sends_a_lines_deliveries_one_at_a_time_in_order(
    line: Line, receiver: Receiver
) -> None:
    since = datetime.now(UTC)
    dead = [await line.dead() for _ in range(3)]
    first = dead[0][0]
    line.behaviour.first.add(first.id)  # its first attempt fails: the others must wait

    response = await line.api.post(
        f"/api/v1/delivery-destinations/{line.endpoint_id}/recover",
        json={"since": since.isoformat()},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"deliveries": 3}
    events = [event for event, _ in dead]
    await eventually(
        lambda: statuses(line.pool, events),
        lambda found: found == ["SUCCEEDED"] * 3,
        timeout=60,
    )
    assert_in_line(receiver.records, [event.id for event in events])
    assert arrivals(receiver, first.id) == 2  # failed once, then succeeded


async def test_a_head_parked_at_send_time_parks_its_line_and_a_recover_resends_it_in_order(
    platform: Pipeline, line: Line, receiver: Receiver
) -> None:
    since = datetime.now(UTC)
    events = [await accept(line.pool, line.org_id, KEY) for _ in range(4)]
    head, later = events[0], events[1:]
    line.behaviour.always.add(head.id)  # the head fails, and waits in a retry tier
    for event in events:
        await platform.publish(event)
    await eventually(
        lambda: statuses(line.pool, events),
        lambda found: (
            found == ["PENDING", "HELD", "HELD", "HELD"] and arrivals(receiver, head.id) > 0
        ),
    )

    # Its user switches the endpoint off before the head's retry is sent.
    await line.switch("INACTIVE")
    # The head is parked when its retry comes up, and the HELD ones behind it in turn, each
    # kept unsent: within seconds, not when the reconciler would find the line stuck.
    await eventually(
        lambda: statuses(line.pool, events),
        lambda found: found == ["PARKED"] * 4,
        timeout=PROMPTLY_S,
    )
    assert [arrivals(receiver, event.id) for event in later] == [0, 0, 0]
    head_arrivals = arrivals(receiver, head.id)

    line.behaviour.always.clear()
    await line.switch("ACTIVE")
    response = await line.api.post(
        f"/api/v1/delivery-destinations/{line.endpoint_id}/recover",
        json={"since": since.isoformat()},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"deliveries": 4}
    await eventually(
        lambda: statuses(line.pool, events),
        lambda found: found == ["SUCCEEDED"] * 4,
        timeout=60,
    )
    # Re-sent through the line: one at a time, in event order, each once.
    assert_in_line(receiver.records, [event.id for event in events])
    assert arrivals(receiver, head.id) == head_arrivals + 1
    assert [arrivals(receiver, event.id) for event in later] == [1, 1, 1]


def arrivals(receiver: Receiver, event_id: str) -> int:
    return sum(1 for record in receiver.records if record.event_id == event_id)
