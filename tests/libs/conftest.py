from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest


@pytest.fixture
async def queue_name(
    test_env: dict[str, str], request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A queue of the test's own on the real RabbitMQ, deleted afterwards."""
    name = f"{test_env['HOOKPOST_BROKER_PREFIX']}.{request.node.name[:80]}"
    yield name
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    async with connection:
        await (await connection.channel()).queue_delete(name)
