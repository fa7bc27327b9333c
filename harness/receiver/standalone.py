"""The receiver as its own process: `python -m harness.receiver --port P [--seed S]
[--route GROUP=SPEC ...]`.

The bench and chaos run it apart so that their load generators never share an event loop
with the server they measure, and so that killing and restarting things in the harness
never stops it. A path's first segment is its group: `--route flaky=flaky:0.3` makes every
`/flaky/…` answer as that behaviour (harness/receiver/behaviours.py); other groups answer
200. Every request is recorded; these read the records back, as JSON:

    GET /stats                 {group: requests answered}
    GET /records[/<group>]     every Record as a row (records.py: Record.to_row)
    GET /seen?path=&event=     {"okAt": when that eventId was first answered 2xx there, or null}
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson
from aiohttp import web

from harness.process import Process, free_port
from harness.receiver.behaviours import parse
from harness.receiver.server import MAX_BODY, Recorder, Routes, catch_all


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def build_app(recorder: Recorder) -> web.Application:
    async def stats(_: web.Request) -> web.Response:
        return _json(recorder.answered)

    async def records(request: web.Request) -> web.Response:
        group = request.match_info.get("group")
        return _json([r.to_row() for r in recorder.records if group in (None, r.group)])

    async def seen(request: web.Request) -> web.Response:
        return _json({"okAt": recorder.ok_at.get((request.query["path"], request.query["event"]))})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records", records)
    app.router.add_get("/records/{group}", records)
    app.router.add_get("/seen", seen)
    catch_all(app, recorder)
    return app


def routes_from(specs: Mapping[str, str], seed: int) -> Routes:
    return Routes({group: parse(spec, seed) for group, spec in specs.items()})


def spawn(
    log_dir: Path, routes: Mapping[str, str], seed: int = 0, name: str = "receiver"
) -> Process:
    """The receiver process, not started yet (start it with ready_path="/stats")."""
    port = free_port()
    argv = [sys.executable, "-m", "harness.receiver", "--port", str(port), "--seed", str(seed)]
    for group, spec in routes.items():
        argv += ["--route", f"{group}={spec}"]
    return Process(name, argv, env=dict(os.environ), port=port, log_path=log_dir / f"{name}.log")


def _never_collect() -> None:
    """The receiver is what the bench and chaos measure with: it records when each request
    arrived. CPython's collections walked every request in flight (a 2 s route keeps
    hundreds), stopping its loop for up to 166 ms and delaying the arrival times of every
    other route, which the bench then charged to hookpost. It makes no cyclic garbage worth
    collecting (none found in any 30 s window measured) and lives for one run, so it never
    collects (BENCHMARKS.md, "Session 18")."""
    gc.collect()
    gc.freeze()
    gc.disable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--route", action="append", default=[], metavar="GROUP=SPEC")
    args = parser.parse_args()
    specs = dict(route.split("=", 1) for route in args.route)
    recorder = Recorder(routes_from(specs, args.seed), keep_requests=False)
    # Two sender replicas at prefetch 600 hold 1,200 connections open at once.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = build_app(recorder)
    _never_collect()
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        keepalive_timeout=120,
    )
