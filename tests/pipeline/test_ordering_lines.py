"""The ordering rule on the real PostgreSQL (libs/delivery/ordering.py LineReleases): which
HELD delivery of an (endpoint, key) line goes next, that racing releases never let two of a
line be PENDING at once, and that a delivery reopened by hand (`rejoin`, as the api's retry
and recover do) waits its turn. Rows are inserted directly; nothing is published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import pytest

from harness.waiting import eventually
from libs.delivery.ordering import LineReleases, Reopened, rejoin
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import DeliveryStep
from services.api.deliveries.repository import reopen_many
from tests.support.factories import event_message, make_endpoint


@dataclass
class Line:
    pool: asyncpg.Pool
    org_id: str
    endpoint_id: str
    key: str

    @property
    def pair(self) -> tuple[str, str]:
        return (self.endpoint_id, self.key)

    async def event(self, *, dispatched: bool = True) -> str:
        event = event_message(self.org_id)
        await self.pool.execute(
            "INSERT INTO events (id, organization_id, type, data, created_at, published_at,"
            " dispatched_at, ordering_key)"
            " VALUES ($1, $2, $3, $4, $5, now(), CASE WHEN $6 THEN now() END, $7)",
            event.id,
            self.org_id,
            event.type,
            event.data,
            event.created_at,
            dispatched,
            self.key,
        )
        return event.id

    async def delivery(
        self, status: str = "HELD", event_id: str | None = None, attempts: int = 0
    ) -> str:
        delivery_id = new_id(IdPrefix.DELIVERY)
        await self.pool.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
            " ordering_key, attempt_count) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            delivery_id,
            event_id or await self.event(),
            self.endpoint_id,
            self.org_id,
            status,
            self.key,
            attempts,
        )
        return delivery_id

    async def statuses(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT status FROM deliveries WHERE endpoint_id = $1 AND ordering_key = $2"
            " ORDER BY event_id",
            self.endpoint_id,
            self.key,
        )
        return [row["status"] for row in rows]

    async def end(self, delivery_id: str, status: str = "SUCCEEDED") -> None:
        await self.pool.execute(
            "UPDATE deliveries SET status = $2 WHERE id = $1", delivery_id, status
        )


@pytest.fixture
async def new_line(db_pool: asyncpg.Pool, make_org, forget_orgs) -> Callable:
    org = await make_org()
    forget_orgs(org.organizationId)
    endpoint = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/x", config={"orderedDelivery": True}
    )

    def make(key: str = "k", endpoint_id: str = endpoint.id) -> Line:
        return Line(db_pool, org.organizationId, endpoint_id, key)

    return make


@pytest.fixture
def releases(db_pool: asyncpg.Pool) -> LineReleases:
    return LineReleases(db_pool, payload_cap_bytes=64 * 1024)


async def reopen_by_hand(
    conn: asyncpg.Connection, line: Line, delivery_ids: list[str]
) -> list[DeliveryStep]:
    """What the api's retry and recover do in their transaction (reopening.py): reopen,
    then rejoin the line."""
    rows = await conn.fetch(
        "SELECT id, event_id FROM deliveries WHERE id = ANY ($1::text[])", delivery_ids
    )
    await reopen_many(conn, [r["id"] for r in rows], [r["event_id"] for r in rows])
    reopened = [Reopened(r["id"], r["event_id"], line.endpoint_id, line.key) for r in rows]
    return await rejoin(conn, reopened, 64 * 1024)


async def reopened_in_a_transaction(
    pool: asyncpg.Pool, line: Line, delivery_ids: list[str]
) -> list[DeliveryStep]:
    async with pool.acquire() as conn, conn.transaction():
        return await reopen_by_hand(conn, line, delivery_ids)


async def test_the_earliest_held_goes_once_nothing_of_its_line_is_pending(
    new_line: Callable, releases: LineReleases
) -> None:
    line = new_line()
    head = await line.delivery("PENDING")
    second, third = await line.delivery(), await line.delivery()
    assert await releases.release([line.pair]) == []  # the head is still in flight
    await line.end(head, "DEAD")

    [step] = await releases.release([line.pair])
    assert (step.task.delivery_id, step.task.ordering_key) == (second, "k")
    assert step.task.data == {"mappingJobId": "job_1", "rowCount": 3}  # the event's, capped
    assert (step.attempt, step.schedule_start) == (1, 1)
    assert await line.statuses() == ["DEAD", "PENDING", "HELD"]
    assert await releases.release([line.pair, line.pair]) == []  # twice: nothing more
    await line.end(second, "FAILED")
    assert [s.task.delivery_id for s in await releases.release([line.pair])] == [third]


async def test_lines_are_independent(new_line: Callable, releases: LineReleases) -> None:
    busy, idle = new_line("busy"), new_line("idle")
    await busy.delivery("PENDING")
    await busy.delivery()
    waiting = await idle.delivery()
    released = await releases.release([busy.pair, idle.pair])
    assert [s.task.delivery_id for s in released] == [waiting]
    assert await busy.statuses() == ["PENDING", "HELD"]


async def test_an_earlier_event_not_dispatched_holds_the_line(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    line = new_line()
    earlier = await line.event(dispatched=False)  # accepted, not fanned out yet
    held = await line.delivery()
    assert await releases.release([line.pair]) == []
    assert await releases.release_keys([(line.org_id, line.key)]) == []

    await db_pool.execute("UPDATE events SET dispatched_at = now() WHERE id = $1", earlier)
    [step] = await releases.release_keys([(line.org_id, line.key)])
    assert step.task.delivery_id == held


async def test_an_earlier_event_kept_as_poison_holds_nothing(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    line = new_line()
    earlier = await line.event(dispatched=False)
    held = await line.delivery()
    await db_pool.execute(
        "INSERT INTO poison_messages (queue, exchange, routing_key, message_id, body)"
        " VALUES ('q', 'x', 'r', $1, '')",
        earlier,
    )
    assert [s.task.delivery_id for s in await releases.release([line.pair])] == [held]


async def test_a_later_event_not_dispatched_holds_nothing(
    new_line: Callable, releases: LineReleases
) -> None:
    line = new_line()
    held = await line.delivery()
    await line.event(dispatched=False)
    assert [s.task.delivery_id for s in await releases.release([line.pair])] == [held]


async def test_stuck_lines_are_those_without_a_head(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    headless, moving = new_line("headless"), new_line("moving")
    await headless.delivery()
    await moving.delivery("PENDING")
    await moving.delivery()
    await db_pool.execute(
        "UPDATE deliveries SET updated_at = now() - interval '1 hour' WHERE endpoint_id = $1",
        headless.endpoint_id,
    )
    stuck = await releases.stuck_lines(after_s=60, limit=1000)
    assert headless.pair in stuck and moving.pair not in stuck
    assert headless.pair not in await releases.stuck_lines(after_s=7200, limit=1000)


async def test_racing_ends_and_releases_keep_one_in_flight_in_order(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    """Eight workers end whatever of the line is PENDING and release it, all at once; a
    watcher checks that the line never has two PENDING. The line ends in event order."""
    line = new_line()
    deliveries = [await line.delivery() for _ in range(30)]
    ended: list[str] = []
    violations: list[int] = []
    done = asyncio.Event()

    async def worker() -> None:
        while not done.is_set():
            finished = await db_pool.fetchval(
                "UPDATE deliveries SET status = 'SUCCEEDED' WHERE id = ("
                " SELECT id FROM deliveries WHERE endpoint_id = $1 AND ordering_key = $2"
                " AND status = 'PENDING' LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                line.endpoint_id,
                line.key,
            )
            if finished is not None:
                ended.append(finished)
                if len(ended) == len(deliveries):
                    done.set()
            await releases.release([line.pair])

    async def watcher() -> None:
        while not done.is_set():
            pending = await db_pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND status = 'PENDING'",
                line.endpoint_id,
            )
            if pending > 1:
                violations.append(pending)
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(8)), watcher()), 60)
    assert violations == []
    assert ended == deliveries


async def test_a_delivery_reopened_behind_a_head_waits_and_goes_next_in_line(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    line = new_line()
    dead = await line.delivery("DEAD", attempts=4)
    head = await line.delivery("PENDING")
    await line.delivery()
    assert await reopened_in_a_transaction(db_pool, line, [dead]) == []
    assert await line.statuses() == ["HELD", "PENDING", "HELD"]
    row = await db_pool.fetchrow(
        "SELECT schedule_start, next_attempt_at FROM deliveries WHERE id = $1", dead
    )
    assert (row["schedule_start"], row["next_attempt_at"]) == (5, None)  # its new schedule

    await line.end(head)
    [step] = await releases.release([line.pair])  # the earliest HELD: the reopened one
    assert (step.task.delivery_id, step.attempt, step.schedule_start) == (dead, 5, 5)
    assert await line.statuses() == ["PENDING", "SUCCEEDED", "HELD"]


async def test_a_delivery_reopened_on_a_line_without_a_head_goes_at_once(
    new_line: Callable, db_pool: asyncpg.Pool
) -> None:
    line = new_line()
    dead = await line.delivery("DEAD", attempts=4)
    await line.delivery("SUCCEEDED")
    [step] = await reopened_in_a_transaction(db_pool, line, [dead])
    assert (step.task.delivery_id, step.attempt, step.schedule_start) == (dead, 5, 5)
    assert step.task.ordering_key == "k"
    assert await line.statuses() == ["PENDING", "SUCCEEDED"]


async def test_reopening_several_of_a_line_sends_only_the_first(
    new_line: Callable, db_pool: asyncpg.Pool
) -> None:
    line = new_line()
    dead = [await line.delivery("DEAD", attempts=4) for _ in range(3)]
    steps = await reopened_in_a_transaction(db_pool, line, list(reversed(dead)))
    assert [s.task.delivery_id for s in steps] == [dead[0]]
    assert await line.statuses() == ["PENDING", "HELD", "HELD"]


async def test_a_release_waits_for_a_reopening_in_progress(
    new_line: Callable, releases: LineReleases, db_pool: asyncpg.Pool
) -> None:
    """The head ends while a retry's transaction, which saw it PENDING, is still open: the
    head's release waits for the line's lock, then sees the reopened delivery HELD and
    sends it. (Without the lock, each would miss the other's change: the line stuck.)"""
    line = new_line()
    dead = await line.delivery("DEAD", attempts=4)
    head = await line.delivery("PENDING")
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            assert await reopen_by_hand(conn, line, [dead]) == []
            await line.end(head)
            release = asyncio.create_task(releases.release([line.pair]))
            # The signal: the release's session waits on an advisory lock.
            await eventually(
                lambda: db_pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    " AND query LIKE '%pg_advisory_xact_lock%'"
                ),
                lambda waiting: waiting >= 1,
                timeout=10,
            )
            assert not release.done()
        [step] = await asyncio.wait_for(release, 10)
    assert step.task.delivery_id == dead
    assert await line.statuses() == ["PENDING", "SUCCEEDED"]
