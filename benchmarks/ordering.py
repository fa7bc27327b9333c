"""`python -m benchmarks.ordering`: what ordered delivery costs, end to end, on a fresh stack
(api, dispatcher, 2 senders) and a receiver answering 200 at once.

Each case sends EVENTS events through `POST /api/v1/events` (each key's events one after the
other, keys side by side) to one endpoint of its own:

- every event with a key of its own, to an unordered endpoint and to an ordered one: the
  latency from each event's 202 to its arrival (an ordered endpoint's deliveries all head
  their line: what holding and releasing costs a delivery that waits for nothing);
- ordered, 1 and 10 keys: sent while the endpoint answers 500, then it answers 200, and
  the line drains: the hop, from one event's 200 to the arrival of the next of its key (the
  engine's release, the publish, a sender's pick-up), and the drain time.

    python -m benchmarks.ordering                 300 events per case
    python -m benchmarks.ordering --events 100

Figures compare cases on one machine, back to back; they are not the bench's headline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

import httpx

from benchmarks.config import OUT
from harness.env import FreshEnv
from harness.receiver import Receiver
from harness.receiver.behaviours import Arrival, Reply
from harness.receiver.records import Record
from harness.stack import Stack
from harness.waiting import poll


@dataclass
class Gate:
    """500 while closed (a retry follows in 0.6 s at the bench's retry scale), then 200."""

    open: bool = False

    def reply(self, arrival: Arrival) -> Reply:
        return Reply() if self.open else Reply(500, "closed")


async def run_case(
    api: httpx.AsyncClient, receiver: Receiver, case: str, events: int, keys: int | None
) -> dict[str, float]:
    """`keys` None: an unordered endpoint, every event with a key of its own anyway.

    An ordered case with lines sends every event before its endpoint answers 200 (a gate),
    so that a hop is the release alone, not the wait for the next event to be accepted."""
    path = f"/{case}"
    lines = keys or events
    gate = Gate(open=lines == events)
    created = await api.post(
        "/api/v1/delivery-destinations",
        json={
            "type": "WEBHOOK",
            "webhookUrl": receiver.behave(path, gate),
            "events": ["mapping.completed"],
            "orderedDelivery": keys is not None,
        },
    )
    created.raise_for_status()
    accepted: dict[str, tuple[str, float]] = {}  # event id → (key, when its 202 came)

    async def line(key: str, count: int) -> None:
        for _ in range(count):
            response = await api.post(
                "/api/v1/events",
                json={"type": "mapping.completed", "data": {}, "orderingKey": key},
            )
            response.raise_for_status()
            accepted[response.json()["eventId"]] = (key, time.time())

    per_line = [events // lines + (1 if i < events % lines else 0) for i in range(lines)]
    await asyncio.gather(*(line(f"{case}-{i}", n) for i, n in enumerate(per_line)))
    opened = time.time()
    gate.open = True

    def answered() -> list[Record]:
        return [r for r in receiver.records if r.path == path and r.status == 200]

    done, _ = await poll(
        lambda: asyncio.sleep(0, answered()), lambda found: len(found) >= events, 600, 0.2
    )
    assert done, f"{case}: not every event arrived"
    records = answered()
    result = {"drain_s": max(r.answered or 0 for r in records) - opened}
    if lines == events:  # every delivery goes at once: from its 202 to its arrival
        latency = sorted(r.arrived - accepted[r.event_id or ""][1] for r in records)
        result["latency_p50_ms"] = statistics.median(latency) * 1000
        result["latency_p95_ms"] = statistics.quantiles(latency, n=20)[-1] * 1000
        return result
    by_key: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_key[accepted[r.event_id or ""][0]].append(r)
    hops = []
    for successes in by_key.values():
        successes.sort(key=lambda r: r.event_id or "")
        hops += [b.arrived - (a.answered or 0) for a, b in pairwise(successes)]
    result["hop_p50_ms"] = statistics.median(hops) * 1000
    result["hop_p95_ms"] = statistics.quantiles(hops, n=20)[-1] * 1000
    result["out_of_order"] = sum(1 for h in hops if h < 0)
    return result


async def main(events: int) -> None:
    env = FreshEnv(f"hookpost_order_{uuid.uuid4().hex[:8]}")
    logs = OUT / f"logs-{env.name}"
    logs.mkdir(parents=True, exist_ok=True)
    await env.create_database()
    stack = Stack(env.env(HOOKPOST_EVENTS_RATE_PER_S="0", **env.retry_scale(0.01)), logs)
    receiver = await Receiver().start()
    try:
        await stack.start(api=True, dispatchers=1, senders=2)
        org = stack.create_org("PRO", "ordering")
        headers = {"Authorization": f"Bearer {org['apiToken']}"}
        async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as api:
            cases = [("unordered", None), ("own-keys", events), ("one-key", 1), ("ten-keys", 10)]
            for case, keys in cases:
                figures = await run_case(api, receiver, case, events, keys)
                shown = ", ".join(f"{name} {value:.1f}" for name, value in figures.items())
                print(f"{case:10} {events} events: {shown}", flush=True)
    finally:
        await receiver.stop()
        await stack.stop_all()
        await env.delete_broker_objects()
        await env.drop_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    asyncio.run(main(parser.parse_args().events))
