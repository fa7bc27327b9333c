"""A real HTTP receiver on 127.0.0.1 that records every request and answers as scripted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()
    query: str = ""  # the raw query string, exactly as it arrived

    def json(self) -> dict:
        import orjson

        return orjson.loads(self.body)


Responder = Callable[[ReceivedRequest, int], int]  # (request, nth request on path) -> status


@dataclass
class Receiver:
    """Each path answers with its own scripted sequence of statuses (the last one repeats)."""

    host: str = "127.0.0.1"
    requests: list[ReceivedRequest] = field(default_factory=list)
    _scripts: dict[str, list[int]] = field(default_factory=dict)
    _delays: dict[str, float] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0
    _arrived: asyncio.Condition | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def script(self, path: str, statuses: list[int], delay_s: float = 0.0) -> str:
        self._scripts[path] = statuses
        self._delays[path] = delay_s
        return self.url(path)

    def on(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> Receiver:
        self._arrived = asyncio.Condition()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        received = ReceivedRequest(
            path=request.path,
            headers=dict(request.headers),
            body=await request.read(),
            received_at=time.time(),
            query=request.query_string,
        )
        nth = len(self.on(request.path))
        self.requests.append(received)
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        delay = self._delays.get(request.path, 0.0)
        if delay:
            await asyncio.sleep(delay)
        statuses = self._scripts.get(request.path, [200])
        status = statuses[min(nth, len(statuses) - 1)]
        return web.Response(status=status, text="ok" if status < 300 else "scripted failure")

    async def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[ReceivedRequest]:
        """Wait until `count` requests have reached `path`; fail the test on timeout."""
        assert self._arrived is not None
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.on(path)) >= count), timeout
            )
        return self.on(path)
