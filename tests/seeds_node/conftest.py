"""The seed page's JS receivers as real processes (harness.Process), against the same stack of
real services as tests/e2e (api, dispatcher, senders on the real broker and database)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.process import Process, free_port
from harness.stack import Stack
from tests.e2e.conftest import api_client  # noqa: F401  (fixtures)
from tests.seeds_node.toolchain import RECEIVERS, build_receivers, node_env
from tests.support.stacks import LOG_DIR, e2e_fixtures

WEBHOOK_PATH = "/webhooks/mappa"  # the page's route, in all three frameworks


# tests/e2e's stack, started once for this package's modules (each test has its own org).
stack_env, stack = e2e_fixtures("package")


@pytest.fixture(scope="session")
def sdk_tarball() -> Path:
    """npm ci (cached), the SDK packed, the receivers compiled and built: the tarball."""
    return build_receivers()


def argv_of(kind: str, port: int) -> list[str]:
    if kind == "next":
        next_bin = RECEIVERS / "node_modules" / "next" / "dist" / "bin" / "next"
        return ["node", str(next_bin), "start", str(RECEIVERS), "-p", str(port), "-H", "127.0.0.1"]
    return ["node", str(RECEIVERS / ".build" / "servers" / f"{kind}.js")]


def wait_answering(proc: Process, path: str, timeout: float = 60.0) -> None:
    """Until `path` answers anything at all: the seed's routes take POST only (a GET is 404 or
    405), so harness's wait-for-200 does not fit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            httpx.get(proc.url(path), timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not answering after {timeout}s:\n{proc.log_tail()}")


@pytest.fixture
def start_receiver(sdk_tarball: Path) -> Iterator[Callable[..., Process]]:
    """`start_receiver(kind, secret=…, api_key=…, base_url=…)`: the page's Express, Fastify or
    Next.js receiver on a free port, its environment as the page reads it."""
    started: list[Process] = []

    def start(
        kind: str, *, secret: str, api_key: str, base_url: str, argv: list[str] | None = None
    ) -> Process:
        port = free_port()
        env = node_env(
            PORT=str(port),
            MAPPA_API_KEY=api_key,
            MAPPA_WEBHOOK_SECRET=secret,
            MAPPA_BASE_URL=base_url,
            NODE_ENV="production",
        )
        log = LOG_DIR / f"seed-receiver-{kind}-{port}.log"
        proc = Process(
            f"{kind}-receiver", argv or argv_of(kind, port), env=env, port=port, log_path=log
        )
        started.append(proc.start(ready_path=None))
        wait_answering(proc, WEBHOOK_PATH)
        return proc

    yield start
    for proc in started:
        proc.stop(10)


@dataclass
class SeedOrg:
    """A new org of the package's stack, with what a test of the page's receivers works
    through: the api, the database, and the page's receivers started for this org."""

    org: dict[str, str]
    api: httpx.AsyncClient
    db: asyncpg.Pool
    api_url: str
    starter: Callable[..., Process]

    def start_receiver(self, kind: str, secret: str) -> Process:
        """The page's `kind` receiver, configured as the page says for this org."""
        return self.starter(
            kind, secret=secret, api_key=self.org["apiToken"], base_url=self.api_url
        )


@pytest.fixture
def seed_org(
    stack: Stack,
    api_client: httpx.AsyncClient,  # noqa: F811  (tests/e2e's fixture, imported above)
    db_pool: asyncpg.Pool,
    start_receiver: Callable[..., Process],
) -> SeedOrg:
    return SeedOrg(stack.create_org(), api_client, db_pool, stack.api_url, start_receiver)
