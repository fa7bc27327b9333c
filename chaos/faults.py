"""The faults, in turn, and how long the pipeline took to deliver again after each one.

Each fault has a start (the harm), a restore point (the killed process is running again, the
server is back) and a recovery point: the first moment a fresh probe event, posted after the
restore point, was answered 2xx by its receiver, end to end through api → broker →
dispatcher → sender. recovery_s = recovery − restore; outage_s = restore − start.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chaos import hard_faults as hard
from chaos.load import LoadStats
from chaos.probe import Prober
from chaos.stack import ChaosStack

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
    slowest_answer_s: float = 0.0  # the api's slowest answer in the fault's window
    problems: list[str] = field(default_factory=list)  # how the fault was not made as planned

    @property
    def outage_s(self) -> float:
        return self.restored - self.started

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.restored


Harm = Callable[[ChaosStack], Awaitable[list[str]]]


async def _kill_dispatcher(stack: ChaosStack) -> list[str]:
    dispatcher = stack.services.dispatcher
    pid = dispatcher.pid
    await stack.services.kill(dispatcher)
    await stack.services.restart(dispatcher)
    return [f"SIGKILL dispatcher (pid {pid}); restarted it"]


async def _restart_rabbitmq(stack: ChaosStack) -> list[str]:
    rabbit = stack.infra.rabbit
    down = await hard.down_for(rabbit.stop, rabbit.start, RABBIT_DOWN_S)
    return [f"rabbitmqctl shutdown; down {down:.1f}s; rabbitmq-server again"]


async def _restart_postgres(stack: ChaosStack) -> list[str]:
    postgres = stack.infra.postgres
    down = await hard.down_for(lambda: postgres.stop("fast"), postgres.start, POSTGRES_DOWN_S)
    return [f"pg_ctl stop -m fast; down {down:.1f}s; pg_ctl start"]


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


Fault = tuple[str, str, Harm]

# `make chaos`: one single-node broker, every fault in turn under the load.
SINGLE_NODE: tuple[Fault, ...] = (
    (
        "sender_kill",
        "first attempts all through senders; SIGKILL a sender holding unacked deliveries",
        hard.kill_sender_holding,
    ),
    ("dispatcher_kill", "SIGKILL the dispatcher, restart it", _kill_dispatcher),
    ("rabbitmq_restart", f"stop RabbitMQ, wait {RABBIT_DOWN_S:.0f} s, start", _restart_rabbitmq),
    ("rabbitmq_kill9", f"SIGKILL the broker, wait {hard.DOWN_S:.0f} s, start", hard.kill_rabbitmq),
    (
        "postgres_restart",
        f"stop PostgreSQL (fast), wait {POSTGRES_DOWN_S:.0f} s, start",
        _restart_postgres,
    ),
    ("postgres_immediate", "pg_ctl stop -m immediate, wait 5 s, start", hard.crash_postgres),
    ("memory_alarm", f"broker memory alarm for {hard.ALARM_S:.0f} s", hard.memory_alarm),
    (
        "partition_rabbitmq",
        f"blackhole workers ↔ RabbitMQ for {hard.PARTITION_S:.0f} s",
        hard.partition_workers_rabbitmq,
    ),
    (
        "partition_postgres",
        f"blackhole workers ↔ PostgreSQL for {hard.PARTITION_S:.0f} s",
        hard.partition_workers_postgres,
    ),
    (
        "api_kill_before_publish",
        "SIGKILL the api between its commit and its publish",
        hard.kill_api_before_publish,
    ),
    ("poison_corpus", "a poison corpus straight onto AMQP", hard.publish_poison),
    ("rolling_deploy", "SIGTERM every service in turn, start each again", _rolling_deploy),
)
# `make chaos`, second part: a 3-node cluster.
CLUSTER: tuple[Fault, ...] = (
    (
        "cluster_leader_kill",
        "SIGKILL the node leading the work queues, start it again",
        hard.kill_cluster_leader,
    ),
)
# `make chaos-long`: PostgreSQL away longer than the poison window.
LONG: tuple[Fault, ...] = (
    (
        "postgres_long_outage",
        f"pg_ctl stop -m immediate, {hard.LONG_POSTGRES_S:.0f} s away, start",
        hard.crash_postgres_long,
    ),
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
    end = recovered or time.time()
    window = [a for a in load.answers if started <= a.sent < end]
    return FaultResult(
        name,
        what,
        started,
        restored,
        recovered,
        dict(load.outcomes(started, end)),
        notes,
        max((a.took_s for a in window), default=0.0),
        [n.removeprefix(hard.NOT_MADE) for n in notes if n.startswith(hard.NOT_MADE)],
    )
