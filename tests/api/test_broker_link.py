"""The api's BrokerLink on the real broker: persistent, mandatory, confirmed, and still
publishing after its connection was cut and came back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from services.api.broker import BrokerLink, BrokerUnavailable
from tests.api.broker_probe import bind_probe_queue, next_message
from tests.api.conftest import UNREACHABLE_AMQP_URL
from tests.support.tcp_proxy import TcpProxy, proxy_to


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def amqp_proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    proxy = await proxy_to(settings.amqp_url, 5672)
    yield proxy
    await proxy.cut()


async def connected_link(url: str, topology: Topology) -> BrokerLink:
    link = BrokerLink(url, topology, publish_timeout_s=1.0, reconnect_interval_s=0.2)
    link.start()
    assert await link.wait_first_attempt()
    return link


async def test_a_publish_is_persistent_and_confirmed_and_an_unroutable_one_fails(
    settings: Settings, topology: Topology, amqp: aio_pika.abc.AbstractChannel
) -> None:
    link = await connected_link(settings.amqp_url, topology)
    try:
        probe = await bind_probe_queue(amqp, topology.events_exchange.name, "export.ready")
        await link.publish(
            b'{"x": 1}',
            exchange=topology.events_exchange,
            routing_key="export.ready",
            message_id="evt_link_1",
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        message = await next_message(probe, lambda m: m.message_id == "evt_link_1")
        assert message.body == b'{"x": 1}'
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/json"
        assert message.headers["traceparent"].startswith("00-0af7651916cd43dd")

        # Nothing is bound to this key on the dead exchange: mandatory makes it come back.
        with pytest.raises(BrokerUnavailable):
            await link.publish(
                b"{}",
                exchange=topology.dead_exchange,
                routing_key="nowhere",
                message_id="evt_link_2",
            )
    finally:
        await link.stop()


async def test_without_a_broker_a_publish_fails_at_once(topology: Topology) -> None:
    link = BrokerLink(UNREACHABLE_AMQP_URL, topology, reconnect_interval_s=0.2)
    link.start()
    try:
        assert not await link.wait_first_attempt()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await link.publish(
                b"{}", exchange=topology.events_exchange, routing_key="x", message_id="evt_3"
            )
        assert time.monotonic() - started < 0.5
    finally:
        await link.stop()


async def test_publishing_resumes_after_the_connection_was_cut(
    settings: Settings,
    topology: Topology,
    amqp: aio_pika.abc.AbstractChannel,
    amqp_proxy: TcpProxy,
) -> None:
    link = await connected_link(through(settings.amqp_url, amqp_proxy.port), topology)
    try:
        probe = await bind_probe_queue(amqp, topology.events_exchange.name, "mapping.failed")

        async def publish(event_id: str) -> None:
            await link.publish(
                b"{}",
                exchange=topology.events_exchange,
                routing_key="mapping.failed",
                message_id=event_id,
            )

        await publish("evt_before")
        await amqp_proxy.cut()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await publish("evt_during")
        assert time.monotonic() - started < 2.0  # bounded by the publish timeout
        await amqp_proxy.restore()

        # The robust connection comes back by itself; the same link publishes again.
        deadline = time.monotonic() + 15
        while True:
            try:
                await publish("evt_after")
                break
            except BrokerUnavailable:
                assert time.monotonic() < deadline, "never published again after the cut"
                await asyncio.sleep(0.2)
        seen = {(await next_message(probe, lambda m: True)).message_id for _ in range(2)}
        assert seen == {"evt_before", "evt_after"}
    finally:
        await link.stop()
