"""The broker topology, declared on the real RabbitMQ: TTL tiers really dead-letter back."""

from __future__ import annotations

import asyncio
import re
import time

import aio_pika
import pytest
from faststream.rabbit import ExchangeType, RabbitBroker

from harness.broker import delete_broker_objects
from libs.domain.retry_policy import RETRY_TIERS_S
from libs.infra.broker import delay_ladder
from libs.infra.broker.messages import ENDPOINT_HEADER
from libs.infra.broker.topology import SEND_ROUTING_KEY, Topology, declare_topology


async def test_retry_tier_returns_the_message_to_the_sender_queue_after_its_ttl(
    test_env: dict[str, str],
) -> None:
    topology = Topology(test_env["HOOKPOST_BROKER_PREFIX"] + "_topo", retry_delay_scale=0.01)
    broker = RabbitBroker(test_env["HOOKPOST_AMQP_URL"])
    await broker.connect()
    try:
        await declare_topology(broker, topology)
        await declare_topology(broker, topology)  # idempotent
        connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            retry = await channel.get_exchange(topology.retry_exchange.name)
            sent_at = time.monotonic()
            await retry.publish(
                aio_pika.Message(b"task", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=topology.retry_routing_key(60),  # 60 s x 0.01 = 600 ms
                mandatory=True,
            )
            sender_queue = await channel.get_queue(topology.sender_queue.name)
            message = None
            while message is None and time.monotonic() - sent_at < 10:
                message = await sender_queue.get(fail=False)
                await asyncio.sleep(0.05)
            assert message is not None, "the retry tier never dead-lettered back"
            waited = time.monotonic() - sent_at
            assert 0.55 <= waited < 3.0
            assert message.body == b"task"
            assert message.routing_key == SEND_ROUTING_KEY
            await message.ack()
    finally:
        await broker.stop()
        # its exchanges too: deleting only the queues left four behind after every run
        await delete_broker_objects(test_env["HOOKPOST_AMQP_URL"], topology.prefix, [0.01])


def test_every_name_carries_the_prefix_and_tiers_carry_their_scaled_ttl() -> None:
    topology = Topology("px", retry_delay_scale=0.01)
    every = topology.every_binding()
    names = [q.name for q, _ in every] + [e.name for _, e in every]
    assert all(name.startswith("px.") for name in names)
    assert [q.name for q in topology.retry_queues()] == [
        "px.retry.10ms",
        "px.retry.50ms",
        "px.retry.300ms",
        "px.retry.600ms",
        "px.retry.3000ms",
        "px.retry.18000ms",
        "px.retry.36000ms",
    ]
    assert topology.sender_queue.arguments["x-queue-type"] == "quorum"


def test_one_shard_is_todays_topology_and_n_shards_hang_off_a_consistent_hash_exchange() -> None:
    plain = Topology("px")
    assert [q.name for q in plain.sender_queues] == ["px.sender"]
    assert (plain.sender_queue.name, plain.deliveries_exchange.name) in _names(plain)
    assert all(e.name != "px.deliveries.shards" for _, e in plain.bindings())

    sharded = Topology("px", sender_shards=3)
    shards = sharded.shards_exchange
    assert [q.name for q in sharded.sender_queues] == ["px.sender.0", "px.sender.1", "px.sender.2"]
    assert [(q, e) for q, e in _names(sharded) if q.startswith("px.sender")] == [
        (f"px.sender.{k}", "px.deliveries.shards") for k in range(3)
    ]
    assert shards.type == ExchangeType.X_CONSISTENT_HASH
    assert shards.arguments == {"hash-header": ENDPOINT_HEADER}
    assert shards.bind_to is not None and shards.bind_to.name == "px.deliveries"
    assert shards.routing_key == SEND_ROUTING_KEY
    # a shard dead-letters and counts poison exactly as the one queue does
    for queue in sharded.sender_queues:
        assert queue.arguments == sharded.sender_queue.arguments
    # what the autoscaler sums: the one queue and every shard, nothing else
    work = {q.name for q in plain.sender_queues + sharded.sender_queues}
    for name in [q.name for q, _ in sharded.bindings()] + ["px.sender"]:
        assert bool(re.fullmatch(sharded.sender_queues_pattern, name)) == (name in work), name


def _names(topology: Topology) -> list[tuple[str, str]]:
    return [(q.name, e.name) for q, e in topology.bindings()]


async def test_shards_take_each_endpoint_whole_retries_come_back_to_it_and_the_old_queue_drains(
    test_env: dict[str, str],
) -> None:
    prefix = test_env["HOOKPOST_BROKER_PREFIX"] + "_shards"
    plain = Topology(prefix, retry_delay_scale=0.001)
    sharded = Topology(prefix, retry_delay_scale=0.001, sender_shards=3)
    broker = RabbitBroker(test_env["HOOKPOST_AMQP_URL"])
    await broker.connect()
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(broker, plain)
        deliveries = await channel.get_exchange(plain.deliveries_exchange.name)
        await deliveries.publish(_step("before"), SEND_ROUTING_KEY, mandatory=True)

        await declare_topology(broker, sharded)  # the switch from 1 to 3
        await declare_topology(broker, sharded)  # idempotent
        endpoints = [f"ep_{n}" for n in range(60)]
        for endpoint in endpoints:
            for _ in range(2):
                await deliveries.publish(_step(endpoint), SEND_ROUTING_KEY, mandatory=True)
        retry = await channel.get_exchange(sharded.retry_exchange.name)
        for endpoint in endpoints[:10]:  # a 10 ms tier dead-letters them to deliveries/send
            routing_key = sharded.retry_routing_key(RETRY_TIERS_S[0])
            await retry.publish(_step(endpoint), routing_key, mandatory=True)

        where: dict[str, set[str]] = {}
        received, expected = 0, len(endpoints) * 2 + 10
        deadline = time.monotonic() + 10
        while received < expected:
            assert time.monotonic() < deadline, f"{received} of {expected} arrived"
            for queue in sharded.sender_queues:
                message = await (await channel.get_queue(queue.name)).get(fail=False)
                if message is not None:
                    where.setdefault(queue.name, set()).add(message.headers[ENDPOINT_HEADER])
                    received += 1
                    await message.ack()
        assert len(where) == 3, "every shard carries work"
        placed = [endpoint for queue in where for endpoint in where[queue]]
        assert sorted(placed) == sorted(endpoints), "each endpoint on one shard only"
        legacy = await channel.get_queue(plain.sender_queue.name)
        kept = await legacy.get(fail=False)
        assert kept is not None and kept.headers[ENDPOINT_HEADER] == "before"
        await kept.ack()
        assert await legacy.get(fail=False) is None, "nothing new reaches the old queue"
    finally:
        await connection.close()
        await broker.stop()
        await delete_broker_objects(test_env["HOOKPOST_AMQP_URL"], prefix, [0.001], 3)


def _step(endpoint: str) -> aio_pika.Message:
    return aio_pika.Message(
        b"task", headers={ENDPOINT_HEADER: endpoint}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )


def _matches(pattern: str, key: str) -> bool:
    """AMQP topic matching, for the ladder's patterns (`*` and literal words)."""
    words, keys = pattern.split("."), key.split(".")
    return len(words) == len(keys) and all(w in ("*", k) for w, k in zip(words, keys, strict=True))


def _ladder_route(topology: Topology, key: str) -> list[str]:
    """The queues a step published to the ladder's entry waits in, following the declared
    bindings: exactly one of each exchange's bindings takes it."""
    visited, exchange = [], topology.defer_entry.name
    while exchange != topology.deliveries_exchange.name:
        [queue] = [
            q
            for q, e in topology.ladder_bindings()
            if e.name == exchange and _matches(q.routing(), key)
        ]
        visited.append(queue.name)
        exchange = queue.arguments["x-dead-letter-exchange"]
        if exchange == topology.deliveries_exchange.name:
            assert queue.arguments["x-dead-letter-routing-key"] == SEND_ROUTING_KEY
        else:
            assert "x-dead-letter-routing-key" not in queue.arguments  # it keeps the bits
    return visited


@pytest.mark.parametrize("wait_s", [0.01, 0.125, 0.126, 1.0, 1.3, 13.7, 300.0, 3600.0, 9999.0])
def test_a_deferred_step_waits_its_own_time_in_the_ladder_to_within_its_resolution(
    wait_s: float,
) -> None:
    topology = Topology("px")
    key = delay_ladder.routing_key(wait_s)
    visited = _ladder_route(topology, key)
    waited_s = sum(int(name.split(".")[-1].removesuffix("ms")) for name in visited) / 1000
    expected = min(wait_s, delay_ladder.LONGEST_S)
    assert expected <= waited_s < expected + delay_ladder.UNIT_S, visited
    assert visited[-1] == "px.defer.0.125ms"  # the last hop hands it to the work queue
    assert len(visited) == key.count("1") + 1


def test_every_ladder_queue_has_one_ttl_for_all_its_steps_and_is_a_quorum_queue() -> None:
    topology = Topology("px", retry_delay_scale=0.01)
    queues = topology.defer_queues()
    assert {q.name for q, _ in topology.ladder_bindings()} == {q.name for q in queues}
    assert not {q.name for q, _ in topology.bindings()} & {q.name for q in queues}  # declared apart
    assert [q.name for q in queues][-3:] == ["px.defer.2.2ms", "px.defer.1.1ms", "px.defer.0.1ms"]
    for queue in queues:
        assert queue.arguments["x-queue-type"] == "quorum"
        assert queue.arguments["x-dead-letter-strategy"] == "at-least-once"
