"""The api's link to RabbitMQ: connect in the background, publish only with confirms.

The api must start and take events while the broker is down (they wait in the outbox),
so connecting is a background loop rather than a startup step, and every publish either
gets the broker's confirm within a short timeout or raises BrokerUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiormq
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange

from libs.common.broker.topology import Topology, declare_topology

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
            except Exception as exc:  # unreachable, refused, auth: all mean "try again later"
                log.warning("broker not reachable, retrying", extra={"error": repr(exc)})
                with contextlib.suppress(Exception):
                    await broker.stop()
                self._first_attempt_done.set()
                await asyncio.sleep(self._reconnect_interval_s)
                continue
            self._broker = broker
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
        """Publish persistently and wait for the confirm; raise BrokerUnavailable otherwise."""
        broker = self._broker
        if broker is None:
            raise BrokerUnavailable("not connected to the broker")
        try:
            result = await asyncio.wait_for(
                broker.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    persist=True,  # FastStream's default is transient
                    mandatory=True,
                    message_id=message_id,
                    content_type="application/json",
                    headers=dict(headers) if headers else None,
                    timeout=self._publish_timeout_s,
                ),
                # The outer bound also covers a robust channel waiting to be restored.
                self._publish_timeout_s + 0.5,
            )
        except Exception as exc:
            raise BrokerUnavailable(f"publish not confirmed: {exc!r}") from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {result!r}")
