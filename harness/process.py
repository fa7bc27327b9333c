"""One subprocess with its log: start and wait until an HTTP path answers 200, stop it politely
or not, pause it, and read its CPU time and memory.

Every service, receiver and helper process of the tests, the bench and chaos runs through
this handle, so each waits for readiness, reports an early exit and tears down the same way.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
HOOKPOST_BIN = Path(sys.executable).with_name("hookpost")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """`argv` as a subprocess, its output appended to `log_path` (the terminal when None).

    `port` is where it answers HTTP: readiness is polled there. A stopped process can be
    started again with the same argv, environment, port and log.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        port: int,
        log_path: Path | None,
        stop_timeout_s: float = 40.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.port = port
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self.popen: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    # ------------------------------------------------------------------ life cycle

    def start(self, ready_path: str | None = "/readyz", timeout: float = 30.0) -> Self:
        """Start, then wait until `ready_path` answers 200 (no wait when it is None)."""
        if self.log_path is None:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=ROOT)
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:  # the child keeps its own copy
                self.popen = subprocess.Popen(
                    self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
        self.ps = psutil.Process(self.popen.pid)
        if ready_path is not None:
            self.wait_ready(ready_path, timeout)
        return self

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url(path), timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None, f"{self.name} was never started"
        self.popen.send_signal(sig)

    def wait(self, timeout: float | None = 60.0) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.wait(timeout)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM (after SIGCONT, in case it is paused) and wait; SIGKILL past `timeout`.
        The exit code, or None if it was never started."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(self.stop_timeout_s if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()

    def kill(self) -> int:
        """SIGKILL and reap: no drain, no goodbye."""
        self.signal(signal.SIGKILL)
        return self.wait(None)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ------------------------------------------------------------------ what it costs

    def _ps(self) -> psutil.Process:
        assert self.ps is not None, f"{self.name} was never started"
        return self.ps

    def cpu_s(self) -> float:
        times = self._ps().cpu_times()
        return times.user + times.system

    def sys_s(self) -> float:
        return self._ps().cpu_times().system

    def rss_mb(self) -> float:
        return self._ps().memory_info().rss / 2**20

    def runqueue_wait_s(self) -> float:
        """Seconds the main thread spent runnable but waiting for a CPU (/proc/<pid>/schedstat)."""
        try:
            return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def client_ports(self, server_port: int) -> set[int]:
        """Local ports of this process's TCP connections to `server_port` (e.g. 5432)."""
        return {
            c.laddr.port
            for c in self._ps().net_connections("tcp")
            if c.raddr and c.raddr.port == server_port
        }
