"""The api's link to RabbitMQ: connect in the background, publish only with confirms.

The api must start and take events while the broker is down (they wait in the outbox),
so connecting is a background loop rather than a startup step, and every publish either
gets the broker's confirm within a short timeout or raises BrokerUnavailable.

Publishes go straight to the aio-pika exchanges FastStream declared (robust, on its default
channel with publisher confirms and `on_return_raises`, restored after a reconnect), as the
dispatcher's do: FastStream's `broker.publish` (producer, context scopes, middlewares, a
correlation id) per event was more CPU than the publish itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.abc import AbstractExchange
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange

from libs.infra.broker.messages import persistent_message
from libs.infra.broker.topology import Topology, declare_topology

log = logging.getLogger("hookpost.api.broker")

CONNECT_TIMEOUT_S = 3.0
RECONNECT_INTERVAL_S = 2.0
# Short: when the broker is away the API must still answer quickly (the outbox has the event).
PUBLISH_TIMEOUT_S = 2.0


class BrokerUnavailable(RuntimeError):
    """The message was not confirmed by the broker; it may or may not have arrived."""


class BrokerLink:
    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
        reconnect_interval_s: float = RECONNECT_INTERVAL_S,
    ) -> None:
        self._url = amqp_url
        self._topology = topology
        self._publish_timeout_s = publish_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._broker: RabbitBroker | None = None
        self._exchanges: dict[str, AbstractExchange] = {}  # by name, once connected
        self._task: asyncio.Task[None] | None = None
        self.connected_once = asyncio.Event()
        self._first_attempt_done = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_loop(), name="broker-connect")

    async def wait_first_attempt(self, timeout: float = CONNECT_TIMEOUT_S + 1) -> bool:
        """Wait for the first connection attempt to end; return whether it connected.

        Startup waits this long so the first requests can publish inline, but never for a
        broker that refused: that api serves on, with the outbox relay catching up later.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt_done.wait(), timeout)
        return self.connected_once.is_set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.stop()
            self._broker = None
            self._exchanges = {}

    def _new_broker(self) -> RabbitBroker:
        return RabbitBroker(
            self._url,
            timeout=CONNECT_TIMEOUT_S,
            reconnect_interval=self._reconnect_interval_s,
            # Confirms make publish() wait for the broker's ack; on_return_raises turns an
            # unroutable mandatory message into an error instead of a silent loss.
            default_channel=Channel(publisher_confirms=True, on_return_raises=True),
        )

    async def _connect_loop(self) -> None:
        """Connect once; afterwards aio-pika's robust connection reconnects by itself."""
        while True:
            broker = self._new_broker()
            try:
                await broker.connect()
                await declare_topology(broker, self._topology)
                exchanges = {
                    # Declared just now: FastStream's declarer answers from its cache.
                    exchange.name: await broker.declare_exchange(exchange)
                    for _, exchange in self._topology.bindings()
                }
            except Exception as exc:  # unreachable, refused, auth: all mean "try again later"
                log.warning("broker not reachable, retrying", extra={"error": repr(exc)})
                with contextlib.suppress(Exception):
                    await broker.stop()
                self._first_attempt_done.set()
                await asyncio.sleep(self._reconnect_interval_s)
                continue
            self._broker = broker
            self._exchanges = exchanges
            self.connected_once.set()
            self._first_attempt_done.set()
            log.info("broker connected")
            return

    async def is_connected(self) -> bool:
        broker = self._broker
        if broker is None:
            return False
        try:
            return await broker.ping(timeout=1.0)
        except Exception:
            return False

    async def publish(
        self,
        body: bytes,
        *,
        exchange: RabbitExchange,
        routing_key: str,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish persistently and mandatorily and wait for the confirm; raise
        BrokerUnavailable on anything else (nack, return, closed channel, timeout)."""
        target = self._exchanges.get(exchange.name)
        if target is None:
            raise BrokerUnavailable("not connected to the broker")
        message = persistent_message(body, message_id, headers)
        try:
            # The outer bound also covers a robust channel waiting to be restored.
            async with asyncio.timeout(self._publish_timeout_s + 0.5):
                result = await target.publish(
                    message, routing_key, mandatory=True, timeout=self._publish_timeout_s
                )
        except Exception as exc:
            raise BrokerUnavailable(f"publish not confirmed: {exc!r}") from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {result!r}")
