"""The chaos run's PRIVATE RabbitMQ node and PostgreSQL cluster, which it may restart.

The RabbitMQ and PostgreSQL on 5672/5432 are shared with everyone's test runs: restarting
them would break other work. So the harness brings up its own, on free ports, in a temp dir:

- RabbitMQ: `/usr/lib/rabbitmq/bin/rabbitmq-server` (not the /usr/sbin wrapper, which
  switches to the `rabbitmq` user and writes the shared node's startup log) with its own node
  name, ports, mnesia/log dirs, an empty plugin list, its own config files, and HOME in the
  temp dir, so its Erlang cookie is a private one (neither root's nor the shared node's).
- PostgreSQL: `initdb` + `pg_ctl` of the installed major version, as the `postgres` OS user
  when run as root (PostgreSQL refuses to run as root), trust auth on 127.0.0.1 only.

Both are torn down, and the temp dir removed, by `close()`, whatever happened before.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aio_pika

from harness.process import free_port

RABBITMQ_BIN = Path(os.environ.get("CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _pg_bin() -> Path:
    """The newest installed PostgreSQL's bin dir (Debian: /usr/lib/postgresql/<major>/bin)."""
    if "CHAOS_PG_BIN" in os.environ:
        return Path(os.environ["CHAOS_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1])


def _wait_process(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a process we started; kill its whole session (ours alone) if it hangs."""
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()


class PrivateRabbit:
    """One RabbitMQ node, owned by this run, that can be stopped and started again."""

    def __init__(
        self,
        base: Path,
        amqp_port: int,
        dist_port: int,
        run_id: str,
        *,
        name: str = "rabbitmq",
        cookie: str | None = None,
    ) -> None:
        suffix = "" if name == "rabbitmq" else f"-{name}"
        self.node = f"hookpost-chaos-{run_id}{suffix}@localhost"
        self.name = name
        self.port = amqp_port
        self.dir = base / name
        self.dir.mkdir()
        self.log_path = base / f"{name}.out"
        self.url = f"amqp://guest:guest@127.0.0.1:{amqp_port}/"
        self.popen: subprocess.Popen[bytes] | None = None
        cookie_path = self.dir / ".erlang.cookie"
        # the nodes of one cluster share a cookie (private to this run all the same)
        cookie_path.write_text(cookie or secrets.token_hex(20))
        cookie_path.chmod(0o400)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{amqp_port}\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: its NODENAME
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # the private cookie above
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 120.0) -> None:
        log = self.log_path.open("ab")
        # Its own session, so a hung node is killed as a group (only what we started).
        self.popen = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        asyncio.run(self._wait_amqp(timeout))

    async def _wait_amqp(self, timeout: float) -> None:
        """Ready = an AMQP login works (the port opens before the node accepts logins)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"private RabbitMQ exited early; see {self.log_path}")
            try:
                connection = await aio_pika.connect(self.url, timeout=2)
                await connection.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def ctl(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kill(self) -> None:
        """SIGKILL the whole VM (its own session: only what this run started)."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self, *args: str, timeout: float = 90.0) -> str:
        """`rabbitmqctl <args>` that must succeed; its output."""
        result = self.ctl(*args, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def queues(self, *columns: str) -> list[dict[str, Any]]:
        """`rabbitmqctl list_queues <columns>` as rows (JSON, so names with spaces survive)."""
        out = self.check("-q", "--formatter", "json", "list_queues", *columns, timeout=30.0)
        rows: list[dict[str, Any]] = json.loads(out or "[]")
        return rows

    def channels(self) -> list[dict[str, object]]:
        """Every channel: its name (holding the client's peer port) and unacked messages."""
        out = self.check(
            "-q",
            "--formatter",
            "json",
            "list_channels",
            "name",
            "messages_unacknowledged",
            timeout=30.0,
        )
        rows: list[dict[str, object]] = json.loads(out or "[]")
        return rows

    def memory_alarm(self, on: bool) -> None:
        """A memory alarm: a watermark no node can stay under blocks every publisher."""
        self.check("set_vm_memory_high_watermark", "0.0000001" if on else "0.4")

    def stop(self, timeout: float = 90.0) -> None:
        """`rabbitmqctl shutdown`: a clean stop that waits for the VM to exit."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            self.ctl("shutdown", timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _wait_process(self.popen, 15.0)

    def close(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            try:
                self.stop(timeout=30.0)
            finally:
                if self.popen.poll() is None:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                    self.popen.wait()


class PrivatePostgres:
    """One PostgreSQL cluster, owned by this run, with trust auth on 127.0.0.1 only."""

    def __init__(self, base: Path, port: int) -> None:
        self.port = port
        self.dir = base / "postgres"
        self.data = self.dir / "data"
        self.log_path = base / "postgres.log"
        self.bin = _pg_bin()
        self.dir.mkdir()
        self._owner = "postgres" if os.geteuid() == 0 else None
        if self._owner is not None:
            user = pwd.getpwnam(self._owner)
            self.log_path.touch()
            for path in (self.dir, self.log_path):
                os.chown(path, user.pw_uid, user.pw_gid)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 120.0) -> None:
        prefix = ["runuser", "-u", self._owner, "--"] if self._owner else []
        # Its own session: the postmaster pg_ctl leaves behind must not get the terminal's
        # Ctrl-C before close() stops it in order.
        result = subprocess.run(
            [*prefix, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}\n{result.stderr}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            "90",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast`: every session is disconnected, as in a real restart."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if not self.running():
            return
        try:
            self.stop("fast")
        except Exception:
            if self.running():
                self.stop("immediate")


class PrivateInfra:
    """Both servers in one temp dir; `close()` stops them and removes the dir.

    `nodes` > 1: a RabbitMQ cluster of that many private nodes (the first on `ports["amqp"]`,
    the others on free ports), joined before any queue is declared, so every quorum queue the
    services declare has a replica on each node.
    """

    def __init__(self, run_id: str, ports: dict[str, int], nodes: int = 1) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=f"hookpost-chaos-{run_id}-"))
        self.base.chmod(0o755)  # the postgres user must reach its data dir inside
        cookie = secrets.token_hex(20)
        self.rabbits = [PrivateRabbit(self.base, ports["amqp"], ports["dist"], run_id)]
        for n in range(2, nodes + 1):
            self.rabbits.append(
                PrivateRabbit(
                    self.base, free_port(), free_port(), run_id, name=f"rabbit{n}", cookie=cookie
                )
            )
        if nodes > 1:  # the first node shares the cluster's cookie too
            first = self.rabbits[0].dir / ".erlang.cookie"
            first.chmod(0o600)
            first.write_text(cookie)
            first.chmod(0o400)
        self.postgres = PrivatePostgres(self.base, ports["pg"])

    @property
    def rabbit(self) -> PrivateRabbit:
        return self.rabbits[0]

    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.rabbit.start()
        for node in self.rabbits[1:]:
            node.start()
            node.check("stop_app")
            node.check("join_cluster", self.rabbit.node)
            node.check("start_app")
            asyncio.run(node._wait_amqp(120.0))
        if len(self.rabbits) > 1:
            status = self.rabbit.check("cluster_status")
            missing = [n.node for n in self.rabbits if n.node not in status]
            if missing:
                raise RuntimeError(f"nodes not in the cluster: {missing}\n{status}")

    def node(self, name: str) -> PrivateRabbit:
        """The cluster node of that Erlang node name."""
        return next(n for n in self.rabbits if n.node == name)

    def close(self, keep_logs_in: Path | None = None) -> None:
        errors: list[BaseException] = []
        for stop in (*(n.close for n in reversed(self.rabbits)), self.postgres.close):
            try:
                stop()
            except BaseException as exc:  # teardown goes on: the other servers must stop too
                errors.append(exc)
        if keep_logs_in is not None:
            for log in (*(n.log_path for n in self.rabbits), self.postgres.log_path):
                if log.exists():
                    shutil.copy(log, keep_logs_in / log.name)
        shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]
