"""The receiver inside a test's own event loop: a real HTTP(S) server on 127.0.0.1 (or any
local address) that keeps every request whole and answers each path as told."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Self

from aiohttp import web

from harness.receiver.behaviours import Behaviour, Scripted
from harness.receiver.records import ReceivedRequest, Record
from harness.receiver.server import MAX_BODY, Recorder, Routes, catch_all
from harness.receiver.tls import self_signed


class Receiver:
    """Paths answer 200 unless told otherwise (`script`, `behave`); `tls_dir`: serve HTTPS
    with a self-signed certificate written there (`ca_path` is it, for the client)."""

    def __init__(self, host: str = "127.0.0.1", *, tls_dir: Path | None = None) -> None:
        self.host = host
        self.port = 0
        self.ca_path: Path | None = None
        self._ssl = None
        if tls_dir is not None:
            self.ca_path, self._ssl = self_signed(tls_dir)
        self._routes = Routes()
        self._recorder = Recorder(self._routes, keep_requests=True)
        self._runner: web.AppRunner | None = None
        self._arrived: asyncio.Condition | None = None

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._recorder.requests

    @property
    def records(self) -> list[Record]:
        return self._recorder.records

    def url(self, path: str = "/hook") -> str:
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def behave(self, path: str, behaviour: Behaviour) -> str:
        """Answer `path` as `behaviour` says; its URL."""
        self._routes.by_path[path] = behaviour
        return self.url(path)

    def script(self, path: str, statuses: list[int], delay_s: float = 0.0) -> str:
        """`path`'s requests get `statuses` in turn (the last one repeats); its URL."""
        return self.behave(path, Scripted(statuses, delay_s))

    def on(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]

    def streamed(self, path_prefix: str) -> list[int]:
        """Body bytes written to each request on paths starting with `path_prefix`."""
        return [r.streamed for r in self.records if r.path.startswith(path_prefix)]

    async def start(self) -> Self:
        self._arrived = asyncio.Condition()
        self._recorder.on_request = self._notify
        app = web.Application(client_max_size=MAX_BODY)
        catch_all(app, self._recorder)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _notify(self) -> None:
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[ReceivedRequest]:
        """Wait until `count` requests have reached `path`; fail the test on timeout."""
        assert self._arrived is not None, "start() the receiver first"
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.on(path)) >= count), timeout
            )
        return self.on(path)
