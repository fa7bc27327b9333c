"""The stack under chaos: private servers, the receiver, and hookpost services as subprocesses.

Services are `.venv/bin/hookpost <service>` (benchmarks.stack.Proc: its log, readiness on
/readyz or /healthz), pointed at the private RabbitMQ and PostgreSQL. A restarted service
keeps its Proc, and so its port: the load generator keeps talking to the same api URL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.stack import HOOKPOST_BIN, ROOT, Proc, free_port, hookpost
from chaos.infra import PrivateInfra

DATABASE = "hookpost_chaos"
PREFIX = "hookpost_chaos"
ENCRYPTION_KEY = "Y2hhb3MtaGFybmVzcy1lbmNyeXB0aW9uLWtleS0zMiE="  # 32 bytes, this run only


@dataclass
class Crash:
    """A service found dead that nobody killed: the pipeline did not survive something."""

    service: str
    returncode: int | None
    during: str


@dataclass
class Stack:
    infra: PrivateInfra
    log_dir: Path
    retry_delay_scale: str
    send_timeout_s: str
    receiver: Proc | None = None
    api: Proc | None = None
    dispatcher: Proc | None = None
    senders: list[Proc] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    exit_codes: dict[str, list[int | None]] = field(default_factory=dict)
    _sender_serial: int = 0

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOOKPOST_ENV": "dev",  # receivers are on 127.0.0.1
            "HOOKPOST_DATABASE_URL": self.infra.postgres.dsn(DATABASE),
            "HOOKPOST_AMQP_URL": self.infra.rabbit.url,
            "HOOKPOST_BROKER_PREFIX": PREFIX,
            "HOOKPOST_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "HOOKPOST_RETRY_DELAY_SCALE": self.retry_delay_scale,
            "HOOKPOST_SEND_TIMEOUT_S": self.send_timeout_s,
        }

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def receiver_url(self) -> str:
        assert self.receiver is not None
        return f"http://127.0.0.1:{self.receiver.port}"

    def services(self) -> list[Proc]:
        return [p for p in (self.api, self.dispatcher, *self.senders) if p is not None]

    # ------------------------------------------------------------------ bringing it up

    async def prepare_database(self) -> None:
        await self.infra.postgres.create_database(DATABASE)
        await asyncio.to_thread(
            subprocess.run,
            [str(HOOKPOST_BIN), "migrate"],
            env=self.env,
            check=True,
            capture_output=True,
        )

    async def start_receiver(self, seed: int) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "chaos.receiver", "--port", str(port), "--seed", str(seed)]
        self.receiver = Proc("receiver", argv, dict(os.environ), port, self.log_dir)
        await asyncio.to_thread(self.receiver.start, "/stats")

    async def start_services(self) -> None:
        self.api = hookpost("api", ["api"], self.env, self.log_dir)
        self.dispatcher = hookpost("dispatcher", ["dispatcher"], self.env, self.log_dir)
        await asyncio.to_thread(self.api.start)
        await asyncio.to_thread(self.dispatcher.start)
        for _ in range(2):
            await self.add_sender()

    async def add_sender(self) -> Proc:
        self._sender_serial += 1
        sender = hookpost(f"sender-{self._sender_serial}", ["sender"], self.env, self.log_dir)
        await asyncio.to_thread(sender.start)
        self.senders.append(sender)
        return sender

    # ------------------------------------------------------------------ hurting it

    @staticmethod
    async def kill(proc: Proc) -> None:
        """SIGKILL: no drain, no goodbye; in-flight work must come back from the broker."""
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.popen.wait)

    async def terminate(self, proc: Proc) -> int | None:
        """SIGTERM and wait (a rolling deploy); the exit code is kept (it must be 0)."""
        code = await asyncio.to_thread(proc.stop, 60.0)
        self.exit_codes.setdefault(proc.name, []).append(code)
        return code

    @staticmethod
    async def restart(proc: Proc, ready_path: str = "/readyz") -> None:
        await asyncio.to_thread(proc.start, ready_path, 90.0)

    async def check_alive(self, during: str) -> None:
        """A service that died by itself is a crash: record it, start it again, go on."""
        for proc in self.services():
            assert proc.popen is not None
            if proc.popen.poll() is not None:
                self.crashes.append(Crash(proc.name, proc.popen.returncode, during))
                await self.restart(proc)

    # ------------------------------------------------------------------ tearing down

    async def stop_services(self) -> None:
        """SIGTERM every service still running, and keep the exit codes."""
        for proc in self.services():
            if proc.popen is not None and proc.popen.poll() is None:
                await self.terminate(proc)

    def close(self) -> None:
        for proc in [*self.services(), self.receiver]:
            if proc is not None and proc.popen is not None and proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait()


def log_dir_for(run_id: str) -> Path:
    path = ROOT / ".hookpost" / f"chaos-{run_id}"
    path.mkdir(parents=True, exist_ok=True)
    return path
