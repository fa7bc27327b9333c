"""hookpost_api_pending_deliveries counts what backpressure counts (services/api/backlog/
repository.py `pending_by_org`, on the real PostgreSQL): an organization's PENDING and HELD
deliveries, not its PARKED or ended ones."""

from __future__ import annotations

import asyncpg

from services.api.backlog.repository import pending_by_org
from tests.support.factories import insert_pending_delivery, make_endpoint


async def test_the_gauge_counts_pending_and_held_deliveries_only(
    db_pool: asyncpg.Pool, make_org
) -> None:
    org_id = (await make_org()).organizationId
    endpoint = await make_endpoint(
        db_pool, org_id, "http://127.0.0.1:9/x", config={"orderedDelivery": True}
    )
    for status, count in (("PENDING", 2), ("HELD", 3), ("PARKED", 4), ("SUCCEEDED", 1)):
        for _ in range(count):
            key = "k" if status == "HELD" else None
            await insert_pending_delivery(
                db_pool, org_id, endpoint.id, status=status, ordering_key=key
            )
    # Every organization of the test database in the top: this one is there.
    found = await pending_by_org(db_pool, limit=100_000)
    assert found.top[org_id] == 2 + 3
