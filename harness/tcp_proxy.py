"""A real TCP forwarder on 127.0.0.1 that a test or a chaos run can cut, blackhole and restore.

- `cut()`: new connections are refused and every forwarded one is aborted (its client sees a
  reset mid-conversation): a restarting PostgreSQL or RabbitMQ, as a client sees it.
- `drop()`: a blackhole partition. Nothing is forwarded either way and nothing is closed: no
  RST, no FIN; bytes sent wait in the kernel's buffers and new connections are accepted but
  never answered, exactly as if the packets were swallowed by the network. Each client finds
  out only through its own timeouts and heartbeats. `restore()` lets the bytes flow again.
- Several targets (a RabbitMQ cluster's nodes): a new connection goes to the first that
  accepts, in order, so clients reach whichever node still lives, as through a load balancer.

In-process (`TcpProxy`, for tests), or as its own process (`python -m harness.tcp_proxy`, for
chaos runs, so proxying never shares an event loop with a load generator), controlled over
HTTP: POST /cut, /drop, /restore; GET /links (client port → upstream local port), /healthz.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web


@dataclass
class Link:
    """One forwarded connection: the client's port on the proxy, ours on the target."""

    client_port: int
    upstream_port: int
    target: tuple[str, int]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *more: tuple[str, int]) -> None:
        self.targets: list[tuple[str, int]] = [(target_host, target_port), *more]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.links: dict[int, Link] = {}
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        self._flowing.set()  # a cut after a drop: nothing may stay parked
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def drop(self) -> None:
        """Blackhole: swallow everything from now on, close nothing."""
        self._flowing.clear()

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self.start()  # the same port again

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()  # blackholed: the handshake is never answered
        for target in self.targets:
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
                break
            except OSError:
                continue
        else:
            writer.transport.abort()
            return
        client_port = writer.get_extra_info("peername")[1]
        upstream_port = up_writer.get_extra_info("sockname")[1]
        self.links[client_port] = Link(client_port, upstream_port, target)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.links.pop(client_port, None)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                chunk = await reader.read(65536)
                if not chunk:
                    break
                await self._flowing.wait()  # read before a drop: held, not delivered
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()


async def proxy_to(url: str, default_port: int) -> TcpProxy:
    """A started proxy in front of the server a URL (database, broker) names."""
    target = urlsplit(url)
    return await TcpProxy(target.hostname or "127.0.0.1", target.port or default_port).start()


def through(url: str, proxy_port: int | TcpProxy) -> str:
    """The URL (a DSN, say) with the proxy, 127.0.0.1:<its port>, as its host."""
    port = proxy_port.port if isinstance(proxy_port, TcpProxy) else proxy_port
    parts = urlsplit(url)
    credentials, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{port}"))


# ---------------------------------------------------------------------- as its own process


def control_app(proxy: TcpProxy) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"port": proxy.port})

    async def links(_: web.Request) -> web.Response:
        return web.json_response(
            [
                {"client": link.client_port, "upstream": link.upstream_port, "target": link.target}
                for link in proxy.links.values()
            ]
        )

    def action(name: str) -> web.RouteDef:
        async def handler(_: web.Request) -> web.Response:
            await getattr(proxy, name)()
            return web.json_response({"mode": name})

        return web.post(f"/{name}", handler)

    app = web.Application()
    app.add_routes(
        [web.get("/healthz", healthz), web.get("/links", links)]
        + [action(name) for name in ("cut", "drop", "restore")]
    )
    return app


async def _serve(port: int, control_port: int, targets: list[tuple[str, int]]) -> None:
    proxy = TcpProxy(*targets[0], *targets[1:])
    proxy.port = port
    await proxy.start()
    runner = web.AppRunner(control_app(proxy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", control_port).start()
    await asyncio.Event().wait()  # until SIGTERM/SIGKILL


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="where clients connect")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--target", type=_target, action="append", required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.control_port, args.target))


if __name__ == "__main__":
    main()
