"""A pipeline under test: real dispatcher and sender subprocesses on one broker prefix."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from libs.infra.broker.messages import EventMessage
from libs.infra.broker.topology import Topology
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcess, free_port, service_env

T = TypeVar("T")


class Pipeline:
    """Services sharing one broker prefix (and so one set of queues)."""

    def __init__(self, base_env: dict[str, str], prefix: str, **overrides: str) -> None:
        self.env = {**base_env, "HOOKPOST_BROKER_PREFIX": prefix, **overrides}
        self.prefix = prefix
        self.scale = float(self.env["HOOKPOST_RETRY_DELAY_SCALE"])
        self.topology = Topology(prefix, self.scale)
        self.processes: list[ServiceProcess] = []
        self.senders: list[ServiceProcess] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self, service: str, **overrides: str) -> ServiceProcess:
        port = free_port()
        env = service_env(self.env, HOOKPOST_OPS_PORT=str(port), **overrides)
        proc = ServiceProcess(service, [service], env, port)
        self.processes.append(proc)
        await asyncio.to_thread(proc.start)
        return proc

    async def publish(self, event: EventMessage) -> None:
        """Publish like an AMQP producer: persistent, mandatory, with publisher confirms."""
        if self._exchange is None:
            self._connection = await aio_pika.connect_robust(self.env["HOOKPOST_AMQP_URL"])
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.get_exchange(self.topology.events_exchange.name)
        await self._exchange.publish(
            aio_pika.Message(
                event.to_bytes(),
                message_id=event.id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=event.type,
            mandatory=True,
        )

    async def queue_depth(self, queue_name: str) -> int:
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(queue_name, passive=True)
            return queue.declaration_result.message_count or 0
        finally:
            await channel.close()

    async def stop_all(self) -> None:
        for proc in self.processes:
            await asyncio.to_thread(proc.stop)
        if self._connection is not None:
            await self._connection.close()

    async def delete_broker_objects(self) -> None:
        connection = await aio_pika.connect(self.env["HOOKPOST_AMQP_URL"])
        async with connection:
            for queue, exchange in self.topology.bindings():
                channel = await connection.channel()
                try:
                    await channel.queue_delete(queue.name)
                    await channel.exchange_delete(exchange.name)
                except aio_pika.exceptions.AMQPError:
                    pass


def metric_value(proc: ServiceProcess, name: str, labels: str = "") -> float:
    """One sample from a service's /metrics (0 when absent)."""
    text = httpx.get(f"http://127.0.0.1:{proc.ops_port}/metrics", timeout=5).text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float = 20.0,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until `done(value)`; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


def summary(records: list[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


class RedirectingReceiver(Receiver):
    """Answers 3xx with a Location pointing at `/landing` on itself (to see if it is followed)."""

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        if 300 <= response.status < 400:
            response.headers["Location"] = self.url("/landing")
        return response


class TlsReceiver(Receiver):
    """The scripted receiver behind HTTPS, with a certificate for 127.0.0.1 and localhost."""

    def __init__(self, cert_dir: Path) -> None:
        super().__init__()
        self.ca_path, self._ssl = _self_signed(cert_dir)

    def url(self, path: str = "/hook") -> str:
        return f"https://{self.host}:{self.port}{path}"

    async def start(self) -> TlsReceiver:
        self._arrived = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self


def _self_signed(cert_dir: Path) -> tuple[Path, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookpost test receiver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = cert_dir / "receiver.pem"
    key_path = cert_dir / "receiver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


class ConnectionCounter:
    """A bare TCP listener that counts every connection it accepts (and closes it)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> ConnectionCounter:
        async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accepted, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
