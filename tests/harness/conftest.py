"""The harness's own tests: its receiver in-process, and its processes on this machine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from harness.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()
