"""The receiver's one request handler, for both modes: record the request, ask its path's
behaviour how to answer, answer that way, and note what was answered."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from harness.receiver.behaviours import Arrival, Behaviour, Ok, Reply
from harness.receiver.records import NO_ANSWER, ReceivedRequest, Record, event_id_of

MAX_BODY = 16 * 2**20  # agent sinks push up to 10 MiB


def group_of(path: str) -> str:
    """'/flaky/3' → 'flaky': what the receiver process routes and counts by."""
    return path.lstrip("/").partition("/")[0]


class Routes:
    """Which behaviour answers a path: one set for that exact path, else one set for its
    first segment (its group), else 200."""

    def __init__(self, by_group: Mapping[str, Behaviour] | None = None) -> None:
        self.by_path: dict[str, Behaviour] = {}
        self.by_group: dict[str, Behaviour] = dict(by_group or {})
        self._ok = Ok()

    def behaviour(self, path: str, group: str) -> Behaviour:
        found = self.by_path.get(path)
        if found is None:
            found = self.by_group.get(group, self._ok)
        return found


class Recorder:
    """Handles every request; keeps a Record of each, and the whole request if asked to."""

    def __init__(self, routes: Routes, *, keep_requests: bool) -> None:
        self.routes = routes
        self.records: list[Record] = []
        self.requests: list[ReceivedRequest] = []
        self.answered: Counter[str] = Counter()  # answers given, per group
        # when (path, eventId) was first answered 2xx: its arrival time
        self.ok_at: dict[tuple[str, str | None], float] = {}
        self.on_request: Callable[[], Awaitable[None]] | None = None
        self._keep_requests = keep_requests
        self._seen_on_path: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        body = await request.read()
        path = request.path
        group = group_of(path)
        event_id = event_id_of(body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = Record(
            path,
            group,
            event_id,
            request.headers.get("X-Webhook-Delivery"),
            arrived,
            peer[1] if peer else 0,
        )
        self.records.append(record)
        nth = self._seen_on_path[path]
        self._seen_on_path[path] += 1
        if self._keep_requests:
            self.requests.append(
                ReceivedRequest(path, dict(request.headers), body, arrived, request.query_string)
            )
        if self.on_request is not None:
            await self.on_request()

        reply = self.routes.behaviour(path, group).reply(Arrival(path, nth, event_id))
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.stream is not None:
            return await self._stream(request, reply, record)
        self._answer(request, record, reply.status)
        return web.Response(status=reply.status, text=reply.text, headers=reply.headers)

    def _answer(self, request: web.Request, record: Record, status: int) -> None:
        # A peer that hung up while we waited (a sender past its timeout) got no answer.
        gone = request.transport is None or request.transport.is_closing()
        record.status = NO_ANSWER if gone else status
        record.answered = time.time()
        self.answered[record.group] += 1
        if 200 <= record.status < 300:
            self.ok_at.setdefault((record.path, record.event_id), record.arrived)

    async def _stream(
        self, request: web.Request, reply: Reply, record: Record
    ) -> web.StreamResponse:
        assert reply.stream is not None
        stream = reply.stream
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = "text/plain"
        self._answer(request, record, reply.status)
        deadline = time.monotonic() + stream.max_s
        try:
            await response.prepare(request)
            while time.monotonic() < deadline and record.streamed < stream.max_bytes:
                # aiohttp drops writes to a closed transport silently: stop counting there.
                if request.transport is None or request.transport.is_closing():
                    break
                await response.write(stream.chunk)
                record.streamed += len(stream.chunk)
                # yield even when write() does not (it returns at once once the peer is
                # gone), so one hung-up stream cannot starve the loop's other connections
                await asyncio.sleep(stream.pause_s)
        except (ConnectionError, RuntimeError):
            pass  # the sender hung up: what an endless body is for
        return response


def catch_all(app: web.Application, recorder: Recorder) -> None:
    """Every method on every path goes to the recorder (after any routes added before)."""
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
