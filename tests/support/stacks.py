"""The tests' services: harness.Stack with the tests' logs, and a Pipeline on its own broker
prefix with an AMQP producer's door, so no test consumes another's work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Literal, Self

import pytest

from harness.broker import EventPublisher, delete_broker_objects
from harness.process import ROOT, Process, free_port
from harness.services import hookpost, service_env
from harness.stack import Stack
from libs.infra.broker.messages import EventMessage
from libs.infra.broker.topology import Topology

LOG_DIR = ROOT / ".hookpost" / "test-logs"

# 1m/5m/30m tiers become 120 ms / 600 ms / 3.6 s: a DEAD delivery in about 5 s.
E2E_RETRY_SCALE = "0.002"


def stack_on(base: Mapping[str, str], **overrides: str) -> Stack:
    """Services on `base` (the test environment) and `overrides`; logs in .hookpost/test-logs
    (named by port: every test run writes there), SIGKILL 20 s after a SIGTERM."""
    return Stack(
        service_env(base, **overrides),
        LOG_DIR,
        log_pattern="{name}-{port}.log",
        stop_timeout_s=20.0,
    )


def e2e_env(test_env: Mapping[str, str]) -> dict[str, str]:
    """The test environment with the e2e retry scale (the whole-platform tests' stack)."""
    return {**test_env, "HOOKPOST_RETRY_DELAY_SCALE": E2E_RETRY_SCALE}


@asynccontextmanager
async def e2e_stack(env: Mapping[str, str]) -> AsyncIterator[Stack]:
    """The whole platform on `env`: api, one dispatcher and two senders, stopped on exit."""
    services = stack_on(env)
    try:
        yield await services.start(dispatchers=1, senders=2)
    finally:
        await services.stop_all()


def e2e_fixtures(scope: Literal["module", "package"]) -> tuple[Callable[..., Any], ...]:
    """The whole-platform tests' `stack_env` and `stack` fixtures, one stack per `scope`
    (tests/e2e: a module's, which may override `stack_env`; tests/seeds_node: the package's)."""

    @pytest.fixture(scope=scope)
    def stack_env(test_env: dict[str, str], db_pool: object) -> dict[str, str]:
        # db_pool: the database exists and is migrated before any service starts.
        return e2e_env(test_env)

    @pytest.fixture(scope=scope)
    async def stack(stack_env: dict[str, str]) -> AsyncIterator[Stack]:
        async with e2e_stack(stack_env) as started:
            yield started

    return stack_env, stack


def api_process(base: Mapping[str, str], **overrides: str) -> Process:
    """`hookpost api` on its own, not started yet (for a sync test or fixture)."""
    stack, port = stack_on(base, **overrides), free_port()
    log_path = stack.log_path("api", port)
    return hookpost("api", "api", stack.env, log_path, port=port, stop_timeout_s=20.0)


class Pipeline:
    """Services sharing the prefix `<test prefix>_<suffix>` (so one set of queues), and a
    producer publishing events onto it. `async with` stops them and deletes the prefix."""

    def __init__(self, base_env: Mapping[str, str], suffix: str, **overrides: str) -> None:
        self.prefix = f"{base_env['HOOKPOST_BROKER_PREFIX']}_{suffix}"
        self.stack = stack_on(base_env, HOOKPOST_BROKER_PREFIX=self.prefix, **overrides)
        self.topology = Topology(
            self.prefix,
            float(self.env["HOOKPOST_RETRY_DELAY_SCALE"]),
            int(self.env.get("HOOKPOST_SENDER_SHARDS", "1")),
        )
        self._publisher = EventPublisher(self.env["HOOKPOST_AMQP_URL"], self.prefix, robust=True)

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    async def publish(self, event: EventMessage) -> None:
        """As an AMQP producer does: persistent, mandatory, with publisher confirms."""
        await self._publisher.publish(event)

    async def queue_depth(self, queue_name: str, *, missing_ok: bool = False) -> int:
        return await self._publisher.queue_depth(queue_name, missing_ok=missing_ok)

    async def close(self) -> None:
        await self.stack.stop_all()
        await self._publisher.close()
        await delete_broker_objects(
            self.env["HOOKPOST_AMQP_URL"],
            self.prefix,
            [self.topology.retry_delay_scale],
            self.topology.sender_shards,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
