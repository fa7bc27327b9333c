"""An AMQP producer, written from docs/producers.md alone: its snippet publishes with aio-pika
(no hookpost code) and a real receiver gets the delivery, once, however often it is sent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness.receiver import Receiver
from harness.waiting import eventually
from tests.observability.conftest import ObservedStack
from tests.support.factories import deliveries_of, make_endpoint

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "producers.md"


def documented_publish() -> Any:
    match = re.search(
        r"<!-- snippet: publish-event[^>]*-->\s*```python\n(.*?)```", DOC.read_text(), re.DOTALL
    )
    assert match, "no publish-event snippet in docs/producers.md"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    return namespace["publish_event"]


async def test_an_event_published_as_documented_is_delivered_once(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    publish_event = documented_publish()
    org = await make_org()
    await make_endpoint(
        db_pool, org.organizationId, receiver.script("/produced", [200]), ["export.ready"]
    )
    amqp_url = stack.pipe.env["HOOKPOST_AMQP_URL"]
    exchange = f"{stack.pipe.prefix}.events"
    data = {"exportFileId": "ef_amqp", "rows": 3}
    event_id = await publish_event(
        amqp_url, org.organizationId, "export.ready", data, exchange_name=exchange
    )
    assert re.fullmatch(r"evt_[0-9A-HJKMNP-TV-Z]{26}", event_id)
    # A producer that missed the confirm publishes the same event again.
    await publish_event(
        amqp_url, org.organizationId, "export.ready", data, event_id, exchange_name=exchange
    )

    [request] = await receiver.wait_for("/produced", 1, timeout=30)
    envelope = request.json()
    assert envelope["eventId"] == event_id
    assert envelope["type"] == "export.ready"
    assert envelope["data"] == data
    [delivery] = await eventually(
        lambda: deliveries_of(db_pool, event_id), lambda r: r and r[0]["status"] == "SUCCEEDED"
    )

    async def duplicates_seen() -> int:
        lines = stack.dispatcher.log_path.read_text().splitlines()
        return sum(
            json.loads(line).get("event_id") == event_id
            for line in lines
            if "duplicate event message ignored" in line
        )

    # the second copy was consumed and recognised; still one delivery, one POST
    assert await eventually(duplicates_seen, lambda n: n >= 1) == 1
    assert len(receiver.on("/produced")) == 1
    assert delivery["attempt_count"] == 1
