"""The platform as subprocesses: an api, dispatchers and senders sharing one environment.

The bench measures it, chaos hurts it and the tests watch it, all through this one object.
A restarted service keeps its Process, and so its port and log: whoever talks to the api
keeps the same URL across a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from harness.orgs import create_org
from harness.process import Process, free_port
from harness.services import hookpost


@dataclass
class Stack:
    env: dict[str, str]  # every service's whole environment (os.environ included)
    log_dir: Path
    log_pattern: str = "{name}.log"  # "{name}-{port}.log" where names repeat in one dir
    stop_timeout_s: float = 40.0  # SIGTERM, then SIGKILL after this long
    api: Process | None = None
    dispatchers: list[Process] = field(default_factory=list)
    senders: list[Process] = field(default_factory=list)
    started: list[Process] = field(default_factory=list)  # every one ever started, in order
    _serial: dict[str, int] = field(default_factory=dict)

    @property
    def dispatcher(self) -> Process:
        return self.dispatchers[0]

    @property
    def api_url(self) -> str:
        assert self.api is not None, "no api in this stack"
        return self.api.url()

    def create_org(self, plan: str = "PRO", name: str = "org") -> dict[str, str]:
        """An organization in this stack's database (`hookpost orgs create`)."""
        return create_org(self.env, name, plan)

    def services(self) -> list[Process]:
        """The services in the stack now (not the ones removed from it)."""
        return [p for p in (self.api, *self.dispatchers, *self.senders) if p is not None]

    # ------------------------------------------------------------------ bringing it up

    async def start(self, *, api: bool = True, dispatchers: int = 1, senders: int = 2) -> Self:
        if api:
            await self.start_api()
        for _ in range(dispatchers):
            await self.add_dispatcher()
        for _ in range(senders):
            await self.add_sender()
        return self

    async def start_api(
        self, name: str = "api", ready_path: str = "/readyz", **overrides: str
    ) -> Process:
        self.api = await self.spawn("api", name, ready_path, **overrides)
        return self.api

    async def add_dispatcher(self, name: str | None = None, **overrides: str) -> Process:
        n = self._next("dispatcher")
        default = "dispatcher" if n == 1 else f"dispatcher-{n}"
        proc = await self.spawn("dispatcher", name or default, **overrides)
        self.dispatchers.append(proc)
        return proc

    async def add_sender(self, name: str | None = None, **overrides: str) -> Process:
        n = self._next("sender")
        proc = await self.spawn("sender", name or f"sender-{n}", **overrides)
        self.senders.append(proc)
        return proc

    async def spawn(
        self, service: str, name: str, ready_path: str = "/readyz", **overrides: str
    ) -> Process:
        """`hookpost <service>` started and ready, counted in `started` but in no role."""
        port = free_port()
        log_path = self.log_path(name, port)
        env = {**self.env, **overrides}
        proc = hookpost(name, service, env, log_path, port=port, stop_timeout_s=self.stop_timeout_s)
        return await self.adopt(proc, ready_path)

    async def adopt(self, proc: Process, ready_path: str = "/readyz") -> Process:
        """Start a process of one's own (a wrapped service, say) and stop it with the rest."""
        await asyncio.to_thread(proc.start, ready_path)
        self.started.append(proc)
        return proc

    def log_path(self, name: str, port: int) -> Path:
        return self.log_dir / self.log_pattern.format(name=name, port=port)

    def _next(self, role: str) -> int:
        self._serial[role] = self._serial.get(role, 0) + 1
        return self._serial[role]

    # ------------------------------------------------------------------ changing it

    async def stop(self, proc: Process, timeout: float | None = None) -> int | None:
        """SIGTERM and wait (a deploy's way); the exit code."""
        return await asyncio.to_thread(proc.stop, timeout)

    async def kill(self, proc: Process) -> int:
        """SIGKILL: in-flight work must come back from the broker."""
        return await asyncio.to_thread(proc.kill)

    async def restart(
        self, proc: Process, ready_path: str = "/readyz", timeout: float = 90.0
    ) -> None:
        await asyncio.to_thread(proc.start, ready_path, timeout)

    async def remove(self, proc: Process) -> int | None:
        """Stop a service and take it out of its role (it stays in `started`)."""
        code = await self.stop(proc)
        for role in (self.dispatchers, self.senders):
            if proc in role:
                role.remove(proc)
        if proc is self.api:
            self.api = None
        return code

    # ------------------------------------------------------------------ tearing down

    async def stop_all(self) -> dict[str, int | None]:
        """SIGTERM everything ever started, the last first; each one's exit code."""
        return {proc.name: await self.stop(proc) for proc in reversed(self.started)}

    def close(self) -> None:
        """SIGKILL whatever still runs: the last resort of a `finally`."""
        for proc in self.started:
            if proc.running:
                proc.kill()
