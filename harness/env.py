"""A database and a broker prefix of one's own, and the environment every service gets.

`create_database` makes the database and migrates it with `hookpost migrate`, as an
operator would; `drop_database` and `delete_broker_objects` leave the shared servers as
they were found.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field

import asyncpg

from harness.broker import delete_broker_objects, delete_queue
from harness.process import HOOKPOST_BIN
from libs.infra.db.migrate import migrate

DEFAULT_DSN = "postgresql://postgres:postgres@127.0.0.1:5432/hookpost"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class FreshEnv:
    name: str  # the database's name and the broker prefix
    base_dsn: str = field(
        default_factory=lambda: os.environ.get("HOOKPOST_DATABASE_URL", DEFAULT_DSN)
    )
    amqp_url: str = field(
        default_factory=lambda: os.environ.get("HOOKPOST_AMQP_URL", DEFAULT_AMQP_URL)
    )
    overrides: dict[str, str] = field(default_factory=dict)  # for every service
    # every retry-delay scale a service ran with: the tiers' queue names depend on it
    retry_scales: set[float] = field(default_factory=lambda: {1.0})

    @property
    def server(self) -> str:
        """The PostgreSQL server's DSN without a database."""
        return self.base_dsn.rpartition("/")[0]

    @property
    def dsn(self) -> str:
        return f"{self.server}/{self.name}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "HOOKPOST_DATABASE_URL": self.dsn,
            "HOOKPOST_AMQP_URL": self.amqp_url,
            "HOOKPOST_BROKER_PREFIX": self.name,
            "HOOKPOST_ENV": "dev",  # receivers are on 127.0.0.1
            **self.overrides,
            **overrides,
        }
        if "HOOKPOST_RETRY_DELAY_SCALE" in env:
            self.retry_scales.add(float(env["HOOKPOST_RETRY_DELAY_SCALE"]))
        return env

    def retry_scale(self, scale: float) -> dict[str, str]:
        """The override that scales a service's retry tiers; remembered, so that the tiers'
        queues it declares are deleted with the rest."""
        self.retry_scales.add(scale)
        return {"HOOKPOST_RETRY_DELAY_SCALE": repr(scale)}

    async def _on_server(self, sql: str) -> None:
        """`sql` on the server's maintenance database (CREATE/DROP DATABASE run outside)."""
        admin = await asyncpg.connect(f"{self.server}/postgres")
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    async def create_database(
        self, *, up_to: int | None = None, hookpost_schema: bool = True
    ) -> None:
        """The database, migrated as an operator would; `up_to`: only up to that migration,
        in-process (a benchmark of a migration fills the schema before it); without
        `hookpost_schema`, empty (another application's own: the bench's peer migrates its own)."""
        await self._on_server(f'CREATE DATABASE "{self.name}"')
        if up_to is not None:
            await migrate(self.dsn, up_to=up_to)
        if up_to is not None or not hookpost_schema:
            return
        await asyncio.to_thread(
            subprocess.run,
            [str(HOOKPOST_BIN), "migrate"],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    async def drop_database(self) -> None:
        await self._on_server(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def delete_queue(self, name: str) -> None:
        await delete_queue(self.amqp_url, name)

    async def delete_broker_objects(self) -> None:
        await delete_broker_objects(self.amqp_url, self.name, self.retry_scales)
