"""Where a run ran: the machine, and the RabbitMQ and PostgreSQL versions it measured."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import aiormq
import asyncpg
import psutil

from benchmarks.results import Machine, Versions
from harness.env import FreshEnv


def machine() -> Machine:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        cpu=model,
        cores=psutil.cpu_count(),
        ram_gb=round(psutil.virtual_memory().total / 2**30, 1),
        kernel=platform.release(),
        python=platform.python_version(),
        loadavg_at_start=os.getloadavg(),
    )


async def versions(env: FreshEnv) -> Versions:
    conn = await aiormq.connect(env.amqp_url)
    rabbit = conn.server_properties.get("version", b"?")
    await conn.close()
    pg = await asyncpg.connect(env.dsn)
    pg_version = await pg.fetchval("SHOW server_version")
    await pg.close()
    return Versions(
        rabbitmq=rabbit.decode() if isinstance(rabbit, bytes) else str(rabbit),
        postgresql=pg_version,
    )
