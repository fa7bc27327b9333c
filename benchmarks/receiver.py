"""The counting receiver, run as its own process: `python -m benchmarks.receiver --port P`.

It is a separate process so the load generator (and the ceiling client) never shares an
event loop with the server it measures. Every POST to `/r/<scenario>/<n>` is recorded as
(arrived, answered, eventId, peer port, status); the bench reads them back afterwards.

    /r/ceiling/…  200 at once (the HTTP ceiling)
    /r/tput/…     200 at once          /r/slow/…   200 after 200 ms
    /r/slower/…   200 after 2,000 ms (a slow receiver: in flight is bounded by prefetch, not CPU)
    /r/flaky/…    500 on an eventId's first arrival, 200 on every later one

GET /stats answers {scenario: arrivals} (cheap: polled while load runs);
GET /records/<scenario> answers every record of that scenario as JSON rows.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections import defaultdict

import orjson
from aiohttp import web

SLOW_S = {"slow": 0.2, "slower": 2.0}


def build_app() -> web.Application:
    counts: dict[str, int] = defaultdict(int)
    records: dict[str, list[tuple[float, float, str | None, int, int]]] = defaultdict(list)
    flaky_seen: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        scenario = request.match_info["scenario"]
        try:
            event_id = orjson.loads(body).get("eventId")
        except (orjson.JSONDecodeError, AttributeError):
            event_id = None
        status = 200
        if scenario in SLOW_S:
            await asyncio.sleep(SLOW_S[scenario])
        elif scenario == "flaky" and event_id not in flaky_seen:
            flaky_seen.add(event_id)
            status = 500
        peer = request.transport.get_extra_info("peername") if request.transport else None
        counts[scenario] += 1
        records[scenario].append((arrived, time.time(), event_id, peer[1] if peer else 0, status))
        return web.Response(status=status, text="ok")

    async def stats(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    async def dump(request: web.Request) -> web.Response:
        rows = records.get(request.match_info["scenario"], [])
        return web.Response(body=orjson.dumps(rows), content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/r/{scenario}/{tail:.*}", receive)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records/{scenario}", dump)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Two sender replicas at prefetch 600 hold 1,200 connections open at once.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        build_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        keepalive_timeout=120,
    )


if __name__ == "__main__":
    main()
