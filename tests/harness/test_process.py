"""The one process handle: readiness, an early exit, SIGTERM then SIGKILL, pause, CPU."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.process import Process, free_port

# A server that answers GET / with 200; "stubborn" ignores SIGTERM.
SERVER = """
import http.server, signal, sys
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler
    ).serve_forever()
"""


def server(tmp_path: Path, mode: str = "polite", stop_timeout_s: float = 40.0) -> Process:
    port = free_port()
    return Process(
        f"server-{mode}",
        [sys.executable, "-c", SERVER, str(port), mode],
        env={},
        port=port,
        log_path=tmp_path / f"{mode}.log",
        stop_timeout_s=stop_timeout_s,
    )


def test_start_waits_for_readiness_and_stop_is_sigterm(tmp_path: Path) -> None:
    proc = server(tmp_path).start(ready_path="/")
    assert proc.running and httpx.get(proc.url("/")).status_code == 200
    assert proc.cpu_s() >= 0 and proc.rss_mb() > 1
    assert proc.stop() == -signal.SIGTERM
    assert not proc.running and proc.returncode == -signal.SIGTERM
    # started again: same port, same log
    proc.start(ready_path="/")
    assert proc.kill() == -signal.SIGKILL


def test_a_process_deaf_to_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    proc = server(tmp_path, "stubborn", stop_timeout_s=0.5).start(ready_path="/")
    started = time.monotonic()
    assert proc.stop() == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


def test_a_paused_process_does_not_answer_until_resumed(tmp_path: Path) -> None:
    proc = server(tmp_path).start(ready_path="/")
    try:
        proc.pause()
        with pytest.raises(httpx.TimeoutException):
            httpx.get(proc.url("/"), timeout=0.5)
        proc.resume()
        assert httpx.get(proc.url("/"), timeout=5).status_code == 200
    finally:
        proc.stop()


def test_an_early_exit_is_reported_with_the_log(tmp_path: Path) -> None:
    proc = Process(
        "crasher",
        [sys.executable, "-c", "print('no config'); raise SystemExit(3)"],
        env={},
        port=free_port(),
        log_path=tmp_path / "crasher.log",
    )
    with pytest.raises(RuntimeError, match="crasher exited early:\nno config"):
        proc.start(timeout=10)
    assert proc.returncode == 3
