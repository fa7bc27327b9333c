"""`gather`: asyncio.gather, without its machinery for a lone awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def gather(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """Their results, in order. A lone one (most events have one delivery) is awaited in the
    caller's task: no task, future or context copy of its own, objects that would live as
    long as it does (a POST's) and that the collector walks (BENCHMARKS.md, "Session 18").
    So it shares the caller's context: what it binds stays bound after it."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    return list(await asyncio.gather(*awaitables))
