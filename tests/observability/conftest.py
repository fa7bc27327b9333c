"""An observed platform: api, dispatcher and one sender as real subprocesses on their own
broker prefix, exporting traces over OTLP/HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest

from harness.process import Process
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.stacks import Pipeline


@dataclass
class ObservedStack:
    pipe: Pipeline
    api: Process
    dispatcher: Process
    sender: Process
    otlp: OtlpReceiver

    @property
    def api_url(self) -> str:
        return self.api.url()


@asynccontextmanager
async def observed_stack(test_env: dict[str, str], suffix: str) -> AsyncIterator[ObservedStack]:
    otlp = await OtlpReceiver().start()
    pipe = Pipeline(
        test_env,
        suffix,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # export within ~0.1 s, not the default 5 s
    )
    try:
        async with pipe:
            await pipe.stack.start(dispatchers=1, senders=1)
            api, dispatcher, sender = pipe.stack.services()
            yield ObservedStack(pipe, api, dispatcher, sender, otlp)
    finally:
        await otlp.stop()


@pytest.fixture(scope="session")
async def stack(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[ObservedStack]:
    # db_pool: the database exists and is migrated before any service starts.
    async with observed_stack(test_env, "obs_traces") as observed:
        yield observed
