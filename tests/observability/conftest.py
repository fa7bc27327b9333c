"""An observed platform: api, dispatcher and one sender as real subprocesses on their own
broker prefix, exporting traces over OTLP/HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from tests.pipeline.harness import Pipeline
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.services import ServiceProcess, free_port, service_env


@dataclass
class ObservedStack:
    pipe: Pipeline
    api: ServiceProcess
    dispatcher: ServiceProcess
    sender: ServiceProcess
    otlp: OtlpReceiver

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.ops_port}"


def scrape(proc: ServiceProcess) -> str:
    """A service's /metrics, over HTTP like Prometheus."""
    response = httpx.get(f"http://127.0.0.1:{proc.ops_port}/metrics", timeout=5)
    response.raise_for_status()
    return response.text


@asynccontextmanager
async def observed_stack(test_env: dict[str, str], suffix: str) -> AsyncIterator[ObservedStack]:
    otlp = await OtlpReceiver().start()
    pipe = Pipeline(
        test_env,
        f"{test_env['HOOKPOST_BROKER_PREFIX']}_{suffix}",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # export within ~0.1 s, not the default 5 s
    )
    try:
        port = free_port()
        api = ServiceProcess("api", ["api", "--port", str(port)], service_env(pipe.env), port)
        pipe.processes.append(api)
        await asyncio.to_thread(api.start)
        dispatcher = await pipe.start("dispatcher")
        sender = await pipe.start("sender")
        pipe.senders = [sender]
        yield ObservedStack(pipe, api, dispatcher, sender, otlp)
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()
        await otlp.stop()


@pytest.fixture(scope="session")
async def stack(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[ObservedStack]:
    # db_pool: the database exists and is migrated before any service starts.
    async with observed_stack(test_env, "obs_traces") as observed:
        yield observed
