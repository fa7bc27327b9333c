"""The stack under chaos: the private servers, the receiver process, and the services
(harness.Stack) pointed at them.

The receiver (harness/receiver, its own process, never faulted) answers by the path's first
segment: /ok/… 200, /flaky/… 500 at random FLAKY_RATE of the time (seeded), /slow/… after
SLOW_S (far past the senders' send timeout, so every attempt times out), /gone/… 410.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from chaos.infra import PrivateInfra
from chaos.judge import CorpusItem
from chaos.probe import Prober
from chaos.proxies import ProxyProcess
from harness.env import FreshEnv
from harness.process import ROOT, Process
from harness.receiver.standalone import spawn
from harness.stack import Stack
from harness.tcp_proxy import through

DATABASE = "hookpost_chaos"  # also the broker prefix
ENCRYPTION_KEY = "Y2hhb3MtaGFybmVzcy1lbmNyeXB0aW9uLWtleS0zMiE="  # 32 bytes, this run only
FLAKY_RATE = 0.3
SLOW_S = 5.0
RECEIVER_ROUTES = {"flaky": f"flaky:{FLAKY_RATE}", "slow": f"slow:{SLOW_S}", "gone": "status:410"}
HOLD_KEY = "chaos-hold-before-publish"  # the api holds this event between commit and publish


@dataclass
class Crash:
    """A service found dead that nobody killed: the pipeline did not survive something."""

    service: str
    returncode: int | None
    during: str


@dataclass
class ChaosStack:
    infra: PrivateInfra
    log_dir: Path
    env: FreshEnv
    services: Stack
    receiver: Process
    amqp_api: ProxyProcess
    amqp_workers: ProxyProcess
    pg_workers: ProxyProcess
    crashes: list[Crash] = field(default_factory=list)
    prober: Prober | None = None  # set once the probe org exists
    corpus: list[CorpusItem] = field(default_factory=list)  # published straight to AMQP
    exit_codes: dict[str, list[int | None]] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        infra: PrivateInfra,
        log_dir: Path,
        *,
        seed: int,
        retry_delay_scale: str,
        send_timeout_s: str,
    ) -> ChaosStack:
        """Nothing runs yet: `start()` brings it up."""
        env = FreshEnv(
            DATABASE,
            base_dsn=infra.postgres.dsn(),
            amqp_url=infra.rabbit.url,
            overrides={
                "HOOKPOST_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "HOOKPOST_RETRY_DELAY_SCALE": retry_delay_scale,
                "HOOKPOST_SEND_TIMEOUT_S": send_timeout_s,
            },
        )
        receiver = spawn(log_dir, RECEIVER_ROUTES, seed)
        nodes = [("127.0.0.1", node.port) for node in infra.rabbits]
        pg = [("127.0.0.1", infra.postgres.port)]
        return cls(
            infra,
            log_dir,
            env,
            Stack(env.env(), log_dir),
            receiver,
            ProxyProcess.create("proxy-amqp-api", nodes, log_dir),
            ProxyProcess.create("proxy-amqp-workers", nodes, log_dir),
            ProxyProcess.create("proxy-pg-workers", pg, log_dir),
        )

    def proxies(self) -> list[ProxyProcess]:
        return [self.amqp_api, self.amqp_workers, self.pg_workers]

    @property
    def worker_env(self) -> dict[str, str]:
        """The dispatcher's and senders' way to the servers: through the partitionable proxies."""
        return {
            "HOOKPOST_AMQP_URL": through(self.env.amqp_url, self.amqp_workers.port),
            "HOOKPOST_DATABASE_URL": through(self.env.dsn, self.pg_workers.port),
        }

    async def add_sender(self, **overrides: str) -> Process:
        return await self.services.add_sender(**self.worker_env, **overrides)

    @property
    def api_url(self) -> str:
        return self.services.api_url

    @property
    def receiver_url(self) -> str:
        return self.receiver.url()

    async def start(self) -> None:
        """The private servers, the database, the receiver, api + dispatcher + 2 senders."""
        await asyncio.to_thread(self.infra.start)
        await self.env.create_database()
        await asyncio.to_thread(self.receiver.start, "/stats")
        for proxy in self.proxies():
            await asyncio.to_thread(proxy.start)
        api_amqp = through(self.env.amqp_url, self.amqp_api.port)
        await self.services.start_api(
            HOOKPOST_AMQP_URL=api_amqp, HOOKPOST_CHAOS_HOLD_PUBLISH_KEY=HOLD_KEY
        )
        await self.services.add_dispatcher(**self.worker_env)
        for _ in range(2):
            await self.add_sender()

    # ------------------------------------------------------------------ hurting it

    async def terminate(self, proc: Process) -> int | None:
        """SIGTERM and wait (a rolling deploy); the exit code is kept (it must be 0)."""
        code = await self.services.stop(proc, 60.0)
        self.exit_codes.setdefault(proc.name, []).append(code)
        return code

    async def check_alive(self, during: str) -> None:
        """A service that died by itself is a crash: record it, start it again, go on."""
        for proc in self.services.services():
            if not proc.running:
                self.crashes.append(Crash(proc.name, proc.returncode, during))
                await self.services.restart(proc)
        for node in self.infra.rabbits:  # a broker node the harness did not kill (or restart)
            if not node.running:
                code = None if node.popen is None else node.popen.returncode
                self.crashes.append(Crash(node.node, code, during))
                await asyncio.to_thread(node.start)

    # ------------------------------------------------------------------ tearing down

    async def stop_services(self) -> None:
        """SIGTERM every service still running, and keep the exit codes."""
        for proc in self.services.services():
            if proc.running:
                await self.terminate(proc)

    def close(self) -> None:
        self.services.close()
        if self.receiver.running:
            self.receiver.kill()
        for proxy in self.proxies():
            proxy.close()


def log_dir_for(run_id: str) -> Path:
    path = ROOT / ".hookpost" / f"chaos-{run_id}"
    path.mkdir(parents=True, exist_ok=True)
    return path
