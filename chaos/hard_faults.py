"""The hard faults (issue 17 item 6): crashes instead of clean stops, a cluster node's death,
a resource alarm, blackhole partitions, the api killed between commit and publish, a sender
killed while it provably holds deliveries, a poison corpus straight on AMQP.

A harm returns its notes; a note starting with NOT_MADE says the fault could not be made as
planned (a precondition never held), which fails the run: a fault that did not happen proves
nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from chaos.judge import CorpusItem
from chaos.stack import HOLD_KEY, ChaosStack
from harness.broker import EventPublisher
from harness.process import Process
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import EventMessage
from libs.infra.broker.topology import Topology

NOT_MADE = "NOT MADE: "
DOWN_S = 10.0  # a crashed server stays down this long before it is started again
ALARM_S = 60.0
PARTITION_S = 70.0  # past RabbitMQ's 60 s heartbeat: the connection may die on either side
LONG_POSTGRES_S = 740.0  # beyond the poison window (20 deliveries × ~30 s of waiting)
HELD_TIMEOUT_S = 60.0


async def _fetchval(stack: ChaosStack, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(stack.env.dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def down_for(stop: Callable[[], object], start: Callable[[], object], down_s: float) -> float:
    """`stop`, then `start` `down_s` seconds later (in threads: both block); the seconds it
    was really down, for the fault's notes."""
    await asyncio.to_thread(stop)
    stopped = time.time()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(start)
    return time.time() - stopped


async def kill_rabbitmq(stack: ChaosStack) -> list[str]:
    """kill -9 of the whole single-node broker: no goodbye to any client, no clean flush."""
    rabbit = stack.infra.rabbit
    down = await down_for(rabbit.kill, rabbit.start, DOWN_S)
    return [f"SIGKILL the node's VM; down {down:.1f}s; started again"]


async def crash_postgres(stack: ChaosStack, down_s: float = 5.0) -> list[str]:
    """`pg_ctl stop -m immediate`: no checkpoint, crash recovery at the next start."""
    postgres = stack.infra.postgres
    down = await down_for(lambda: postgres.stop("immediate"), postgres.start, down_s)
    return [f"pg_ctl stop -m immediate; down {down:.1f}s; crash recovery"]


async def crash_postgres_long(stack: ChaosStack) -> list[str]:
    return await crash_postgres(stack, LONG_POSTGRES_S)


async def memory_alarm(stack: ChaosStack) -> list[str]:
    """Every publisher blocked by a memory alarm for ALARM_S."""
    rabbit = stack.infra.rabbit
    await asyncio.to_thread(rabbit.memory_alarm, True)
    raised = time.time()
    try:
        await asyncio.sleep(ALARM_S)
    finally:
        await asyncio.to_thread(rabbit.memory_alarm, False)
    return [f"memory high watermark 1e-7 for {time.time() - raised:.1f}s, then 0.4"]


async def _partition(stack: ChaosStack, proxy_name: str) -> list[str]:
    proxy = {p.name: p for p in stack.proxies()}[proxy_name]
    await asyncio.to_thread(proxy.drop)
    dropped = time.time()
    try:
        await asyncio.sleep(PARTITION_S)
    finally:
        await asyncio.to_thread(proxy.restore)
    return [f"{proxy_name}: every packet dropped for {time.time() - dropped:.1f}s, no RST"]


async def partition_workers_rabbitmq(stack: ChaosStack) -> list[str]:
    return await _partition(stack, "proxy-amqp-workers")


async def partition_workers_postgres(stack: ChaosStack) -> list[str]:
    return await _partition(stack, "proxy-pg-workers")


async def kill_api_before_publish(stack: ChaosStack) -> list[str]:
    """Post the one event the api holds between its commit and its publish (HOLD_KEY), wait
    until its row is committed, SIGKILL the api there, start it again, and wait until the
    outbox relay has re-driven the event to its receiver."""
    api = stack.services.api
    assert api is not None and stack.prober is not None
    post = asyncio.create_task(stack.prober.post_held(HOLD_KEY))
    deadline = time.time() + HELD_TIMEOUT_S
    event_id = None
    while event_id is None and time.time() < deadline and not post.done():
        event_id = await _fetchval(
            stack, "SELECT id FROM events WHERE idempotency_key = $1", HOLD_KEY
        )
        await asyncio.sleep(0.05)
    if event_id is None:
        post.cancel()
        return [f"{NOT_MADE}the held event was never committed ({post.done()=})"]
    published = await _fetchval(stack, "SELECT published_at FROM events WHERE id = $1", event_id)
    await stack.services.kill(api)
    killed = time.time()
    answer = await post
    await stack.services.restart(api)
    notes = [f"held {event_id}: published_at={published}; SIGKILL; the client got {answer}"]
    if published is not None:
        notes.append(f"{NOT_MADE}{event_id} was published before the kill")
    delivered = await stack.prober.ok_at_or_none(str(event_id), HELD_TIMEOUT_S * 4)
    if delivered is None:
        notes.append(f"{NOT_MADE}the held event {event_id} never reached its receiver")
    else:
        notes.append(
            f"the held event reached its receiver {delivered - killed:.1f}s after the kill"
        )
    return notes


def _channel_peer_port(name: str) -> int | None:
    """'127.0.0.1:54321 -> 127.0.0.1:5672 (1)' → 54321."""
    peer = name.split(" -> ", 1)[0]
    try:
        return int(peer.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def unacked_held_by(stack: ChaosStack, proc: Process) -> int:
    """Deliveries the broker counts as unacknowledged on `proc`'s channels: its connections to
    the workers' proxy, mapped to the proxy's own connections, which the broker sees."""
    upstream = stack.amqp_workers.upstream_ports(proc.client_ports(stack.amqp_workers.port))
    return sum(
        int(str(ch["messages_unacknowledged"]))
        for ch in stack.infra.rabbit.channels()
        if _channel_peer_port(str(ch["name"])) in upstream
    )


async def kill_sender_holding(stack: ChaosStack) -> list[str]:
    """With HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0 every attempt goes through a sender; SIGKILL
    one once the broker says it holds unacknowledged deliveries; start another."""
    dispatcher = stack.services.dispatcher
    dispatcher.env["HOOKPOST_DISPATCHER_FIRST_ATTEMPTS"] = "0"
    await stack.terminate(dispatcher)
    await stack.services.restart(dispatcher)
    victim = stack.services.senders[0]
    held, deadline = 0, time.time() + 60
    while held == 0 and time.time() < deadline:
        held = await asyncio.to_thread(unacked_held_by, stack, victim)
    notes = [f"{victim.name} held {held} unacknowledged deliveries (rabbitmqctl list_channels)"]
    if held == 0:
        notes.append(f"{NOT_MADE}{victim.name} never held an unacknowledged delivery")
    await stack.services.kill(victim)
    stack.services.senders.remove(victim)
    replacement = await stack.add_sender()
    notes.append(f"SIGKILL {victim.name} (pid {victim.pid}); started {replacement.name}")
    await asyncio.sleep(5)  # the phase runs on senders only for a while after the kill
    dispatcher.env.pop("HOOKPOST_DISPATCHER_FIRST_ATTEMPTS")
    await stack.terminate(dispatcher)
    await stack.services.restart(dispatcher)
    return notes


async def kill_cluster_leader(stack: ChaosStack) -> list[str]:
    """SIGKILL the cluster node leading the work queues; time the failover (a probe delivered
    while it is down); start it again (it rejoins and catches up)."""
    assert stack.prober is not None
    prefix = stack.env.name
    work = {f"{prefix}.dispatcher", f"{prefix}.sender"}
    alive = next(n for n in stack.infra.rabbits if n.running)
    rows = await asyncio.to_thread(alive.queues, "name", "leader", "members")
    leaders = [str(r["leader"]) for r in rows if r["name"] in work]
    members = {str(r["name"]): len(r["members"]) for r in rows if r["name"] in work}
    if not leaders:
        return [f"{NOT_MADE}no work queue found: {rows}"]
    leader = max(set(leaders), key=leaders.count)
    node = stack.infra.node(leader)
    await asyncio.to_thread(node.kill)
    killed = time.time()
    notes = [f"SIGKILL {leader}, leader of {leaders.count(leader)} work queues; members {members}"]
    if any(n < len(stack.infra.rabbits) for n in members.values()):
        notes.append(f"{NOT_MADE}a work queue is not replicated on every node: {members}")
    elected = asyncio.create_task(_work_queues_led(stack, work, leader, killed))
    failover = await stack.prober.delivered_after(killed, timeout=120)
    notes.append(await elected)
    if failover is None:
        notes.append(f"{NOT_MADE}no probe delivered while {leader} was down")
    else:
        notes.append(f"failover: a probe delivered {failover - killed:.1f}s after the kill")
    survivor = next((n for n in stack.infra.rabbits if n.running), None)
    if survivor is None:  # check_alive records which died, and starts them again
        notes.append(f"{NOT_MADE}every node was down after {leader}'s kill")
    else:
        rows = await asyncio.to_thread(survivor.queues, "name", "leader")
        notes.append("new leaders: " + ", ".join(f"{r['name']}={r['leader']}" for r in rows))
    await asyncio.to_thread(node.start)
    return notes


async def _work_queues_led(stack: ChaosStack, work: set[str], dead: str, killed: float) -> str:
    """When every work queue had a leader again on a live node, as a surviving node says."""
    deadline = killed + 120
    while time.time() < deadline:
        survivor = next((n for n in stack.infra.rabbits if n.running and n.node != dead), None)
        if survivor is not None:
            try:
                rows = await asyncio.to_thread(survivor.queues, "name", "leader")
            except (RuntimeError, subprocess.TimeoutExpired):
                rows = []
            leaders = {str(r["name"]): str(r["leader"]) for r in rows if r["name"] in work}
            if len(leaders) == len(work) and dead not in leaders.values():
                return f"work queues led again {time.time() - killed:.1f}s after the kill"
        await asyncio.sleep(1.0)
    return "work queues still without a live leader 120 s after the kill"


# ------------------------------------------------------------------------ the poison corpus


async def publish_poison(stack: ChaosStack) -> list[str]:
    """Publish the corpus straight to the events exchange and wait until each message is
    where it must be (kept as poison, or stored as the event it is)."""
    corpus, messages = await _corpus(stack)
    publisher = await EventPublisher(stack.env.amqp_url, stack.env.name).start()
    try:
        for item, (body, routing_key) in zip(corpus, messages, strict=True):
            await publisher.publish_raw(body, routing_key, item.message_id)
    finally:
        await publisher.close()
    stack.corpus.extend(corpus)
    ids = [item.message_id for item in corpus]
    deadline, settled = time.time() + 120, 0
    while time.time() < deadline:
        settled = int(
            await _fetchval(
                stack,
                "SELECT count(*) FROM unnest($1::text[]) AS m(id) WHERE"
                " EXISTS (SELECT 1 FROM poison_messages p WHERE p.message_id = m.id)"
                " OR EXISTS (SELECT 1 FROM events e WHERE e.id = m.id)",
                ids,
            )
        )
        if settled == len(ids):
            break
        await asyncio.sleep(0.5)
    notes = [f"{len(corpus)} messages: " + ", ".join(i.name for i in corpus)]
    if settled < len(ids):
        notes.append(f"{NOT_MADE}only {settled} of {len(ids)} settled within 120 s")
    return notes


async def _corpus(stack: ChaosStack) -> tuple[list[CorpusItem], list[tuple[bytes, str]]]:
    conn = await asyncpg.connect(stack.env.dsn)
    try:
        org = await conn.fetchval("SELECT organization_id FROM endpoints ORDER BY id LIMIT 1")
        original = await conn.fetchrow(
            "SELECT id, organization_id, type, data, created_at FROM events"
            " WHERE dispatched_at IS NOT NULL AND target_endpoint_id IS NULL ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()
    assert original is not None, "no dispatched event to duplicate"
    now = datetime.now(UTC)
    unknown = EventMessage(
        id=new_id(IdPrefix.EVENT),
        organization_id="org_chaos_does_not_exist",
        type="mapping.completed",
        data={"mappingJobId": "job_poison"},
        created_at=now,
    )
    oversized = EventMessage(
        id=new_id(IdPrefix.EVENT),
        organization_id=org,
        type="mapping.completed",
        data={"mappingJobId": "job_oversized", "blob": "x" * (2 * 1024 * 1024)},
        created_at=now,
    )
    data = original["data"]
    duplicate = EventMessage(
        id=original["id"],
        organization_id=original["organization_id"],
        type=original["type"],
        data=orjson.loads(data) if isinstance(data, str) else data,
        created_at=original["created_at"],
    )
    wrong_types = orjson.dumps(
        {"id": 42, "organizationId": [org], "type": 7, "data": "text", "createdAt": "yesterday"}
    )
    malformed_id = f"chaos-malformed-{new_id(IdPrefix.EVENT)}"
    wrong_id = f"chaos-wrong-types-{new_id(IdPrefix.EVENT)}"
    corpus = [
        CorpusItem("malformed JSON", malformed_id, "poison"),
        CorpusItem("unknown organization", unknown.id, "poison"),
        CorpusItem("oversized body (2 MiB)", oversized.id, "poison-or-event"),
        CorpusItem("wrong field types", wrong_id, "poison"),
        CorpusItem("duplicate message id", duplicate.id, "duplicate"),
    ]
    messages = [
        (b'{"id": "evt_broken", "organizationId": ', "mapping.completed"),
        (unknown.to_bytes(), unknown.type),
        (oversized.to_bytes(), oversized.type),
        (wrong_types, "mapping.completed"),
        (duplicate.to_bytes(), duplicate.type),
    ]
    return corpus, messages


async def dead_queue_depths(stack: ChaosStack) -> dict[str, int]:
    """Messages still ready on the dead-letter queues (their consumers must have taken all)."""
    topology = Topology(stack.env.name)
    publisher = EventPublisher(stack.env.amqp_url, stack.env.name)
    try:
        return {
            q.name: await publisher.queue_depth(q.name)
            for q in (topology.dead_deliveries_queue, topology.dead_events_queue)
        }
    finally:
        await publisher.close()
