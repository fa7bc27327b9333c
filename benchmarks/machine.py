"""Where a run ran: the machine, and the RabbitMQ and PostgreSQL versions it measured.

Two figures say how fast the machine is for this design, so that runs on different machines
can be told apart: a pure-Python loop (the services' own code), and what one send over
loopback TCP costs the sender when the process reading it is asleep (each message between
two services, or to PostgreSQL or RabbitMQ, at low load). On session 13's VM that send cost
68 us, against 9 us back to back (BENCHMARKS.md, "Session 13").
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
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
        python_loop_ms=round(_python_loop_ms(), 1),
        wakeup_send_us=round(_wakeup_send_us(), 1),
    )


def _python_loop_ms(iterations: int = 1_000_000) -> float:
    """Wall time of a loop adding `iterations` integers, the best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


_READER = (
    "import socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "while s.recv(65536): pass"
)


def _wakeup_send_us(sends: int = 300, gap_s: float = 0.002) -> float:
    """Mean time of one 300-byte send over loopback TCP to a process blocked reading it
    (a pause before each send lets it fall asleep)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        reader = subprocess.Popen([sys.executable, "-c", _READER, str(server.getsockname()[1])])
        conn, _ = server.accept()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            spent = 0.0
            for _ in range(sends):
                time.sleep(gap_s)
                started = time.perf_counter()
                conn.sendall(b"x" * 300)
                spent += time.perf_counter() - started
        finally:
            conn.close()
            reader.wait(timeout=10)
    return spent / sends * 1e6


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
