"""The harness's TCP proxy (harness/tcp_proxy.py) on real loopback sockets: a blackhole
swallows bytes without closing anything and lets them through on restore; with several
targets a connection goes to the first that accepts (a cluster's live node)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from harness.process import free_port
from harness.tcp_proxy import TcpProxy
from harness.waiting import eventually


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """An echo server in the test's own loop (a fixture's teardown hung on the proxy's last
    connection under pytest-asyncio)."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _roundtrip(
    port: int, payload: bytes = b"ping"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return reader, writer, await asyncio.wait_for(reader.readexactly(len(payload)), 5)


async def test_drop_swallows_bytes_without_closing_and_restore_delivers_them() -> None:
    async with echo_server() as echo_port:
        await _drop_and_restore(echo_port)


async def _drop_and_restore(echo_port: int) -> None:
    proxy = await TcpProxy("127.0.0.1", echo_port).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"one")
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"

    await proxy.drop()
    writer.write(b"two")
    await writer.drain()
    # Nothing comes back, and nothing closes: no reset, no EOF, just silence.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 1.0)
    assert not reader.at_eof()
    # A new connection is accepted by the kernel but never answered either.
    late_reader, late_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    late_writer.write(b"late")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late_reader.read(1), 0.5)

    await proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"two"
    assert await asyncio.wait_for(late_reader.readexactly(4), 5) == b"late"
    await proxy.cut()


async def test_cut_resets_what_drop_keeps() -> None:
    async with echo_server() as echo_port:
        await _cut(echo_port)


async def _cut(echo_port: int) -> None:
    proxy = await TcpProxy("127.0.0.1", echo_port).start()
    reader, writer, _ = await _roundtrip(proxy.port)
    await proxy.cut()
    assert await asyncio.wait_for(reader.read(10), 5) == b""  # closed at once
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.close()


async def test_a_connection_goes_to_the_first_target_that_accepts() -> None:
    async with echo_server() as echo_port:
        await _first_target(echo_port)


async def _first_target(echo_port: int) -> None:
    dead = ("127.0.0.1", free_port())  # nothing listens: refused
    proxy = await TcpProxy(*dead, ("127.0.0.1", echo_port)).start()
    _, writer, echoed = await _roundtrip(proxy.port)
    assert echoed == b"ping"
    [link] = proxy.links.values()
    assert link.target == ("127.0.0.1", echo_port)
    writer.close()

    async def links() -> int:
        return len(proxy.links)

    await eventually(links, lambda n: n == 0, timeout=5)  # both pipes ended
    await proxy.cut()
