"""The faults, in turn, and how long the pipeline took to deliver again after each one.

Each fault has a start (the harm), a restore point (the killed process is running again, the
server is back) and a recovery point: the first moment a fresh probe event, posted after the
restore point, was answered 2xx by its receiver, end to end through api → broker →
dispatcher → sender. recovery_s = recovery − restore; outage_s = restore − start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from chaos.load import LoadStats, post_event
from chaos.stack import ChaosStack
from harness.receiver import ReceiverClient

PROBE_PATH = "/ok/probe"
RABBIT_DOWN_S = 10.0
POSTGRES_DOWN_S = 5.0


@dataclass
class FaultResult:
    name: str
    what: str
    started: float
    restored: float
    recovered: float | None
    api_answers: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def outage_s(self) -> float:
        return self.restored - self.started

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.restored


@dataclass
class Prober:
    """Posts probe events for the probe org and waits until the receiver answered one 2xx."""

    session: aiohttp.ClientSession
    api_url: str
    receiver: ReceiverClient
    token: str
    accepted: list[str] = field(default_factory=list)
    serial: int = 0

    async def delivered_after(self, not_before: float, timeout: float = 240.0) -> float | None:
        """When the first probe posted at/after `not_before` was delivered (None: never)."""
        deadline = time.time() + timeout
        event_id: str | None = None
        while time.time() < deadline:
            if event_id is None:
                self.serial += 1
                answer = await post_event(
                    self.session, self.api_url, self.token, "mapping.completed", self.serial
                )
                if answer.event_id is None:
                    await asyncio.sleep(0.25)
                    continue
                event_id = answer.event_id
                self.accepted.append(event_id)
            ok_at = await self.receiver.ok_at(PROBE_PATH, event_id)
            if ok_at is not None:
                return ok_at
            await asyncio.sleep(0.1)
        return None


Harm = Callable[[ChaosStack], Awaitable[list[str]]]


async def _kill_sender(stack: ChaosStack) -> list[str]:
    victim = stack.services.senders[0]
    await stack.services.kill(victim)
    stack.services.senders.remove(victim)
    replacement = await stack.services.add_sender()
    return [f"SIGKILL {victim.name} (pid {victim.pid}); started {replacement.name}"]


async def _kill_dispatcher(stack: ChaosStack) -> list[str]:
    dispatcher = stack.services.dispatcher
    pid = dispatcher.pid
    await stack.services.kill(dispatcher)
    await stack.services.restart(dispatcher)
    return [f"SIGKILL dispatcher (pid {pid}); restarted it"]


async def _restart_rabbitmq(stack: ChaosStack) -> list[str]:
    rabbit = stack.infra.rabbit
    await asyncio.to_thread(rabbit.stop)
    stopped = time.time()
    await asyncio.sleep(RABBIT_DOWN_S)
    await asyncio.to_thread(rabbit.start)
    return [f"rabbitmqctl shutdown; down {time.time() - stopped:.1f}s; rabbitmq-server again"]


async def _restart_postgres(stack: ChaosStack) -> list[str]:
    postgres = stack.infra.postgres
    await asyncio.to_thread(postgres.stop, "fast")
    stopped = time.time()
    await asyncio.sleep(POSTGRES_DOWN_S)
    await asyncio.to_thread(postgres.start)
    return [f"pg_ctl stop -m fast; down {time.time() - stopped:.1f}s; pg_ctl start"]


async def _rolling_deploy(stack: ChaosStack) -> list[str]:
    notes = []
    for proc in stack.services.services():
        started = time.time()
        code = await stack.terminate(proc)
        exited = time.time()
        await stack.services.restart(proc)
        notes.append(
            f"{proc.name}: SIGTERM → exit {code} in {exited - started:.1f} s,"
            f" ready again {time.time() - exited:.1f} s later"
        )
    return notes


FAULTS: tuple[tuple[str, str, Harm], ...] = (
    ("sender_kill", "SIGKILL a sender mid-flight, start another", _kill_sender),
    ("dispatcher_kill", "SIGKILL the dispatcher, restart it", _kill_dispatcher),
    ("rabbitmq_restart", f"stop RabbitMQ, wait {RABBIT_DOWN_S:.0f} s, start", _restart_rabbitmq),
    (
        "postgres_restart",
        f"stop PostgreSQL (fast), wait {POSTGRES_DOWN_S:.0f} s, start",
        _restart_postgres,
    ),
    ("rolling_deploy", "SIGTERM every service in turn, start each again", _rolling_deploy),
)


async def run_fault(
    name: str, what: str, harm: Harm, stack: ChaosStack, prober: Prober, load: LoadStats
) -> FaultResult:
    started = time.time()
    notes = await harm(stack)
    restored = time.time()
    recovered = await prober.delivered_after(restored)
    crashes_before = len(stack.crashes)
    await stack.check_alive(name)
    notes += [f"CRASH: {c.service} exited {c.returncode}" for c in stack.crashes[crashes_before:]]
    return FaultResult(
        name,
        what,
        started,
        restored,
        recovered,
        dict(load.outcomes(started, recovered or time.time())),
        notes,
    )
