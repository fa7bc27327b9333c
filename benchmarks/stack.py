"""The bench's own stack: a fresh database and broker prefix, services as subprocesses.

Like tests/support/services.py (which the bench does not import: tests change under it),
every service is `.venv/bin/hookpost <service>` with its ops port in HOOKPOST_OPS_PORT. The
tests take `HOOKPOST_BIN`, `free_port` and `create_org` from here (as `chaos/` does).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import psutil

from libs.infra.broker.topology import Topology

HOOKPOST_BIN = Path(sys.executable).with_name("hookpost")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """One subprocess (a hookpost service or the receiver) with its log and psutil handle."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, ready_path: str = "/readyz", timeout: float = 30.0) -> Proc:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self.ps = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{ready_path}"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def cpu_s(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return times.user + times.system

    def sys_s(self) -> float:
        assert self.ps is not None
        return self.ps.cpu_times().system

    def runqueue_wait_s(self) -> float:
        """Seconds the main thread spent runnable but waiting for a CPU (/proc/<pid>/schedstat)."""
        try:
            return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def client_ports(self, server_port: int) -> set[int]:
        """Local ports of this process's TCP connections to `server_port` (e.g. 5432)."""
        assert self.ps is not None
        return {
            c.laddr.port
            for c in self.ps.net_connections("tcp")
            if c.raddr and c.raddr.port == server_port
        }

    def rss_mb(self) -> float:
        assert self.ps is not None
        return self.ps.memory_info().rss / 2**20

    def pause(self) -> None:
        self.popen.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(self) -> None:
        self.popen.send_signal(signal.SIGCONT)  # type: ignore[union-attr]

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return None if self.popen is None else self.popen.returncode
        self.popen.send_signal(signal.SIGCONT)
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def hookpost(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    """A hookpost service; the api's port is its ops port."""
    port = free_port()
    if args[0] == "api":
        return Proc(name, [str(HOOKPOST_BIN), "api", "--port", str(port)], env, port, log_dir)
    return Proc(
        name, [str(HOOKPOST_BIN), *args], {**env, "HOOKPOST_OPS_PORT": str(port)}, port, log_dir
    )


def receiver(log_dir: Path) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.receiver", "--port", str(port)]
    return Proc("receiver", argv, dict(os.environ), port, log_dir)


@dataclass
class BenchEnv:
    """Database and broker prefix of one bench run, and the environment every service gets."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    base_dsn: str = field(
        default_factory=lambda: os.environ.get(
            "HOOKPOST_DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:5432/hookpost"
        )
    )
    amqp_url: str = field(
        default_factory=lambda: os.environ.get(
            "HOOKPOST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"
        )
    )
    retry_scales: set[float] = field(default_factory=lambda: {1.0})

    @property
    def name(self) -> str:
        return f"hookpost_bench_{self.run_id}"

    @property
    def dsn(self) -> str:
        return f"{self.base_dsn.rpartition('/')[0]}/{self.name}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "HOOKPOST_DATABASE_URL": self.dsn,
            "HOOKPOST_AMQP_URL": self.amqp_url,
            "HOOKPOST_BROKER_PREFIX": self.name,
            "HOOKPOST_ENV": "dev",
            # The per-org ingest limit (200 events/s by default) is a product policy, not a
            # capacity: with it on, the 1-endpoint phase measured the limit (thousands of
            # 429s per window) instead of the pipeline. Off, the bench's one org per phase
            # can offer what the pipeline takes.
            "HOOKPOST_EVENTS_RATE_PER_S": "0",
        }
        env.update(overrides)
        if "HOOKPOST_RETRY_DELAY_SCALE" in env:
            self.retry_scales.add(float(env["HOOKPOST_RETRY_DELAY_SCALE"]))
        return env

    async def create_database(self) -> None:
        admin = await asyncpg.connect(f"{self.base_dsn.rpartition('/')[0]}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        await asyncio.to_thread(
            subprocess.run,
            [str(HOOKPOST_BIN), "migrate"],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    async def drop_database(self) -> None:
        admin = await asyncpg.connect(f"{self.base_dsn.rpartition('/')[0]}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def delete_queue(self, name: str) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)

    async def delete_broker_objects(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            seen: set[str] = set()
            for scale in self.retry_scales:
                for queue, exchange in Topology(self.name, scale).bindings():
                    for kind, name in (("q", queue.name), ("x", exchange.name)):
                        if (kind, name) in seen:
                            continue
                        seen.add((kind, name))
                        channel = await connection.channel()
                        try:
                            if kind == "q":
                                await channel.queue_delete(name)
                            else:
                                await channel.exchange_delete(name)
                        except aio_pika.exceptions.AMQPError:
                            pass
                        finally:
                            if not channel.is_closed:
                                await channel.close()


def create_org(env: dict[str, str], name: str, plan: str = "PRO") -> dict[str, str]:
    """`hookpost orgs create` as an operator runs it: the new org and its API token."""
    done = subprocess.run(
        [str(HOOKPOST_BIN), "orgs", "create", name, "--plan", plan],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"hookpost orgs create failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


async def create_orgs(env: dict[str, str], names: list[str]) -> dict[str, dict[str, str]]:
    results = await asyncio.gather(*(asyncio.to_thread(create_org, env, n) for n in names))
    return dict(zip(names, results, strict=True))


def cpu_by_pid(name_prefixes: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds of every live process whose name starts with one of the prefixes."""
    found: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        name = proc.info["name"] or ""
        times = proc.info["cpu_times"]
        if times is not None and name.startswith(name_prefixes):
            found[proc.pid] = times.user + times.system
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two cpu_by_pid() snapshots (processes born in between count whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
