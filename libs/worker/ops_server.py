"""/healthz, /readyz and /metrics for the services that have no HTTP API of their own."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("hookpost.ops")

ReadinessCheck = Callable[[], Awaitable[bool]]
DEFAULT_PORT = 9100


async def start_ops_server(
    host: str, port: int | None, is_ready: ReadinessCheck
) -> tuple[web.AppRunner, int]:
    """`/healthz` answers while the process runs (never asks the broker); `/readyz` asks.

    `port` None: DEFAULT_PORT if it is free, else one the kernel picks; the port is logged
    ("ops endpoints listening") and returned with the runner."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        try:
            ready = await is_ready()
        except Exception:  # a failing check means "not ready", never a crash
            ready = False
        return web.json_response(
            {"status": "ready" if ready else "not ready"}, status=200 if ready else 503
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _bind(host, port)
    await web.SockSite(runner, sock).start()
    bound: int = sock.getsockname()[1]
    log.info("ops endpoints listening", extra={"host": host, "ops_port": bound})
    return runner, bound


def _bind(host: str, port: int | None) -> socket.socket:
    if port is not None:
        return _listening(host, port)
    try:
        return _listening(host, DEFAULT_PORT)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return _listening(host, 0)  # another worker on this host holds the default


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
