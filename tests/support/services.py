"""Run hookpost services as real subprocesses (`.venv/bin/hookpost <service>`)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

# Shared with the bench and chaos (the one copy of each); re-exported for the tests.
from harness.orgs import create_org as create_org
from harness.process import HOOKPOST_BIN as HOOKPOST_BIN
from harness.process import free_port as free_port

LOG_DIR = Path(__file__).resolve().parents[2] / ".hookpost" / "test-logs"


class ServiceProcess:
    """One service subprocess; its ops port serves /healthz and /readyz."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        ops_port: int,
        command: list[str] | None = None,
    ) -> None:
        self.name = name
        self.args = args
        # The program to run: `hookpost <args>` unless a test wraps a service in its own.
        self.command = command or [str(HOOKPOST_BIN), *args]
        self.env = env
        self.ops_port = ops_port
        self.proc: subprocess.Popen[bytes] | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}-{ops_port}.log"

    def start(self, ready_timeout: float = 30.0, ready_path: str = "/readyz") -> ServiceProcess:
        """Start and wait until `ready_path` answers 200 (`/healthz` when its broker is away)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.wait_ready(ready_timeout, ready_path)
        return self

    def wait_ready(self, timeout: float, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ops_port}{path}"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def service_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    env = {**os.environ, **base}
    env.update(overrides)
    return env
