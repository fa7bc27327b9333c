"""A hookpost service as a Process: `.venv/bin/hookpost <service>` on a port of its own.

The api listens on `--port` and serves /healthz, /readyz and /metrics there; the dispatcher
and the senders serve them on HOOKPOST_OPS_PORT. Either way the Process's `port` is that one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.process import HOOKPOST_BIN, Process, free_port


def service_env(base: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """This process's environment, then `base`, then `overrides`: what a service is given."""
    return {**os.environ, **base, **overrides}


def hookpost(
    name: str,
    service: str,
    env: Mapping[str, str],
    log_path: Path | None,
    *,
    args: Sequence[str] = (),
    port: int | None = None,
    stop_timeout_s: float = 40.0,
) -> Process:
    """`hookpost <service> <args>`, not started yet."""
    port = port or free_port()
    argv = [str(HOOKPOST_BIN), service, *args]
    if service == "api":
        argv += ["--port", str(port)]
    else:
        env = {**env, "HOOKPOST_OPS_PORT": str(port)}
    return Process(name, argv, env=env, port=port, log_path=log_path, stop_timeout_s=stop_timeout_s)
