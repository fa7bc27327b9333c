"""The harness's TCP proxy (harness/tcp_proxy.py) on real loopback sockets: a blackhole
swallows bytes without closing anything and lets them through on restore; with several
targets a connection goes to the first that accepts (a cluster's live node)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from harness.process import free_port
from harness.tcp_proxy import TcpProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _roundtrip(port: int, payload: bytes = b"ping") -> tuple[asyncio.StreamReader, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return reader, await asyncio.wait_for(reader.readexactly(len(payload)), 5)


async def test_drop_swallows_bytes_without_closing_and_restore_delivers_them(
    echo_port: int,
) -> None:
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


async def test_cut_resets_what_drop_keeps(echo_port: int) -> None:
    proxy = await TcpProxy("127.0.0.1", echo_port).start()
    reader, _ = await _roundtrip(proxy.port)
    await proxy.cut()
    assert await asyncio.wait_for(reader.read(10), 5) == b""  # closed at once
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_a_connection_goes_to_the_first_target_that_accepts(echo_port: int) -> None:
    dead = ("127.0.0.1", free_port())  # nothing listens: refused
    proxy = await TcpProxy(*dead, ("127.0.0.1", echo_port)).start()
    _, echoed = await _roundtrip(proxy.port)
    assert echoed == b"ping"
    [link] = proxy.links.values()
    assert link.target == ("127.0.0.1", echo_port)
    await proxy.cut()
