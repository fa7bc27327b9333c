"""Polling until something holds: the harness's one way to wait for the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float,
    interval: float = 0.1,
) -> tuple[bool, T]:
    """Call `probe` until `done(value)` or `timeout` passes: (whether it held, last value)."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            return False, value
        await asyncio.sleep(interval)
        value = await probe()
    return True, value


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float = 20.0,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until `done(value)`; fail with the last value on timeout."""
    held, value = await poll(probe, done, timeout, interval)
    if not held:
        raise AssertionError(f"condition not reached within {timeout}s; last value: {value!r}")
    return value


def first_is(status: str) -> Callable[[Sequence[Mapping[str, object]]], bool]:
    """For `poll`/`eventually` over delivery rows: the first row has reached `status`."""
    return lambda rows: bool(rows) and rows[0]["status"] == status
