"""The pipeline's transport alone: HTTP in → one confirmed broker round trip → HTTP out.

    python -m benchmarks.skeleton ingress --port P --queue Q
    python -m benchmarks.skeleton relay --port P --queue Q --receiver URL --fanout F

No database, no validation, no signing, no retries: the `ingress` (uvicorn, uvloop and
httptools, as the api runs) publishes each POSTed body with a publisher confirm and answers 202;
the `relay` (aio-pika on uvloop, as the dispatcher consumes) POSTs every message `fanout` times
to the bench's receiver with aiohttp and acks it. Both run as their own processes, like the
api and the dispatcher, and take the same load generator and receiver as the pipeline.

What it does is the least any implementation of this design does per delivery, with the
libraries we use, so its rate is the ceiling of this design on this machine: the ratio of
hookpost's rate to it is the part our own code costs. Its rate is not a target hookpost could
reach (storing every event and delivery before answering is the guarantee).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aio_pika
import aiohttp
import orjson
import uvicorn
import uvloop
from aiohttp import web

QUORUM = {"x-queue-type": "quorum"}
PREFETCH = 256  # the dispatcher's prefetch

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Ingress:
    """A bare ASGI app: GET answers 200 (readiness); POST publishes its body, answers 202."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        self._amqp_url = amqp_url
        self._queue = queue
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["method"] == "POST":
            await self._publish(receive, send)
        else:
            await _answer(send, 200, b"{}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connection = await aio_pika.connect(self._amqp_url)
                channel = await connection.channel(publisher_confirms=True)
                await channel.declare_queue(self._queue, durable=True, arguments=QUORUM)
                self._exchange = channel.default_exchange
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _publish(self, receive: Receive, send: Send) -> None:
        assert self._exchange is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event_id = f"evt_{uuid.uuid4().hex}"
        await self._exchange.publish(
            aio_pika.Message(
                body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=event_id
            ),
            routing_key=self._queue,
        )
        await _answer(send, 202, orjson.dumps({"eventId": event_id}))


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def relay(amqp_url: str, queue_name: str, receiver: str, fanout: int, port: int) -> None:
    """Consume, POST each message `fanout` times (at once), ack; /ready once consuming."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(queue_name, durable=True, arguments=QUORUM)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PREFETCH))
    headers = {"Content-Type": "application/json"}

    async def post(body: bytes, n: int) -> None:
        async with session.post(f"{receiver}/{n}", data=body, headers=headers) as response:
            await response.read()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # The receiver records the eventId of what it is sent, as hookpost's envelope has it.
        body = orjson.dumps({"eventId": message.message_id, "data": orjson.loads(message.body)})
        await asyncio.gather(*(post(body, n) for n in range(fanout)))
        await message.ack()

    await queue.consume(on_message)
    app = web.Application()
    app.router.add_get("/ready", lambda _: _ready())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()  # until the bench terminates it


async def _ready() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("ingress", "relay"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--receiver", help="relay: the URL prefix it POSTs to")
    parser.add_argument("--fanout", type=int, default=1)
    args = parser.parse_args()
    if args.role == "ingress":
        uvicorn.run(
            Ingress(args.amqp_url, args.queue),
            host="127.0.0.1",
            port=args.port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    else:
        uvloop.run(relay(args.amqp_url, args.queue, args.receiver, args.fanout, args.port))


if __name__ == "__main__":
    main()
