"""The chaos run's TCP proxies (harness/tcp_proxy.py, each its own process): what the services
reach RabbitMQ and PostgreSQL through, so that a partition can be made between them.

    amqp-api       api → every RabbitMQ node (the first that accepts)
    amqp-workers   dispatcher, senders → every RabbitMQ node
    pg-workers     dispatcher, senders → PostgreSQL

The api has a broker proxy of its own so that a partition of the workers leaves the api's
ingest alone, and a cluster node's death reaches the api as it would behind a load balancer.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.process import Process, free_port


@dataclass
class ProxyProcess:
    name: str
    process: Process
    port: int  # where clients connect

    @classmethod
    def create(cls, name: str, targets: list[tuple[str, int]], log_dir: Path) -> ProxyProcess:
        port, control = free_port(), free_port()
        argv = [sys.executable, "-m", "harness.tcp_proxy", "--port", str(port)]
        argv += ["--control-port", str(control)]
        for host, target_port in targets:
            argv += ["--target", f"{host}:{target_port}"]
        proc = Process(name, argv, env=os.environ, port=control, log_path=log_dir / f"{name}.log")
        return cls(name, proc, port)

    def start(self) -> None:
        self.process.start("/healthz")

    def _post(self, action: str) -> None:
        httpx.post(self.process.url(f"/{action}"), timeout=5.0).raise_for_status()

    def drop(self) -> None:
        """Blackhole both ways: no byte forwarded, no connection closed."""
        self._post("drop")

    def restore(self) -> None:
        self._post("restore")

    def upstream_ports(self, client_ports: set[int]) -> set[int]:
        """Our ports on the target for these clients' connections (the broker sees those)."""
        links = httpx.get(self.process.url("/links"), timeout=5.0).json()
        return {link["upstream"] for link in links if link["client"] in client_ports}

    def close(self) -> None:
        if self.process.running:
            self.process.kill()
