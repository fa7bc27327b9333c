"""The chaos receivers, one process: `python -m chaos.receiver --port P --seed S`.

It runs apart from the harness (which SIGKILLs and restarts things) so that it never stops,
and records every POST it gets. The first path segment says how it answers:

    /ok/<name>     200 at once
    /flaky/<name>  500 at random FLAKY_RATE of the time (seeded), else 200
    /slow/<name>   holds the request SLOW_S, far past the senders' send timeout
    /gone/<name>   410 always

Every POST is recorded as [path, eventId, X-Webhook-Delivery, status, arrived];
GET /stats answers {kind: count}, GET /records every record, GET /seen?path=&event= when
that eventId was first answered 2xx on that path (null before), all as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
from collections import Counter

import orjson
from aiohttp import web

FLAKY_RATE = 0.3
SLOW_S = 5.0
KINDS = ("ok", "flaky", "slow", "gone")


def build_app(seed: int) -> web.Application:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    records: list[tuple[str, str | None, str | None, int, float]] = []
    ok_at: dict[tuple[str, str | None], float] = {}  # first 2xx answer per (path, eventId)

    async def receive(request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        kind = request.match_info["kind"]
        try:
            event_id = orjson.loads(body).get("eventId")
        except (orjson.JSONDecodeError, AttributeError):
            event_id = None
        if kind == "flaky":
            status = 500 if rng.random() < FLAKY_RATE else 200
        elif kind == "gone":
            status = 410
        elif kind == "slow":
            status = 0  # recorded as "no answer": the sender gives up long before SLOW_S
        else:
            status = 200
        counts[kind] += 1
        delivery = request.headers.get("X-Webhook-Delivery")
        records.append((request.path, event_id, delivery, status, arrived))
        if 200 <= status < 300:
            ok_at.setdefault((request.path, event_id), arrived)
        if kind == "slow":
            await asyncio.sleep(SLOW_S)
        text = "too late" if kind == "slow" else "ok" if status < 300 else "chaos says no"
        return web.Response(status=status or 200, text=text)

    async def stats(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    async def seen(request: web.Request) -> web.Response:
        """When (path, eventId) was first answered 2xx, or null: the harness's probes."""
        at = ok_at.get((request.query["path"], request.query["event"]))
        return web.Response(body=orjson.dumps({"okAt": at}), content_type="application/json")

    async def dump(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(records), content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{kind:(ok|flaky|slow|gone)}/{name}", receive)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records", dump)
    app.router.add_get("/seen", seen)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    web.run_app(
        build_app(args.seed),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
