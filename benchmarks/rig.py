"""What the phases run against, each built whole before any phase uses it.

Run       the run's id, its fresh database and broker prefix, its log directory
Rig       the Run, with its database created, the receiver process and a client of it:
          all that the ceilings need
Pipeline  the Rig, with hookpost's api, dispatchers and senders (harness.Stack), the
          orgs and their subscriptions, a database pool and an AMQP producer
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from benchmarks import load
from benchmarks.common import log
from benchmarks.config import DISPATCHERS, ORGS, OUT, RECEIVER_ROUTES, SUBSCRIPTIONS
from harness import stale_runs
from harness.env import FreshEnv
from harness.orgs import create_orgs
from harness.process import Process
from harness.receiver import ReceiverClient, Record
from harness.receiver.standalone import spawn
from harness.stack import Stack
from harness.waiting import poll


@dataclass(frozen=True)
class Run:
    run_id: str
    env: FreshEnv
    logs: Path  # service logs; py-spy stacks in logs/profiles

    @classmethod
    def new(cls) -> Run:
        run_id = uuid.uuid4().hex[:8]
        # The per-org ingest limit (200 events/s by default) is a product policy, not a
        # capacity: with it on, the 1-endpoint phase measured the limit (thousands of 429s
        # per window) instead of the pipeline. Off, the bench's one org per phase can offer
        # what the pipeline takes.
        # No ingest rate limit; room for the "wide" scenario's 100 subscriptions in one org.
        overrides = {"HOOKPOST_EVENTS_RATE_PER_S": "0", "HOOKPOST_ACTIVE_ENDPOINT_QUOTA": "100"}
        env = FreshEnv(stale_runs.run_name("bench", run_id), overrides=overrides)
        logs = OUT / f"logs-{run_id}"
        (logs / "profiles").mkdir(parents=True, exist_ok=True)
        return cls(run_id, env, logs)


@dataclass(frozen=True)
class Rig:
    run: Run
    receiver: Process
    session: aiohttp.ClientSession
    arrivals: load.ArrivalCounter
    presence: asyncpg.Connection  # says the run is in progress (harness/stale_runs.py)

    @classmethod
    async def start(cls, run: Run) -> Rig:
        """What killed runs left swept; then the database, the receiver process, and a
        session polling its counts."""
        admin_dsn = f"{run.env.server}/postgres"
        presence = await stale_runs.presence(admin_dsn, run.env.name)
        try:
            swept = await stale_runs.sweep(run.env.amqp_url, admin_dsn, run.env.name)
            if swept:
                log(f"swept what killed runs left: {', '.join(swept)}")
            await run.env.create_database()
            receiver = spawn(run.logs, RECEIVER_ROUTES)
            try:
                receiver.start(ready_path="/stats")
            except BaseException:
                await _cleanup(run.env)
                raise
        except BaseException:
            await presence.close()
            raise
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=300), timeout=aiohttp.ClientTimeout(total=60)
        )
        client = ReceiverClient(session, receiver.url())
        return cls(run, receiver, session, load.ArrivalCounter(client).start(), presence)

    @property
    def env(self) -> FreshEnv:
        return self.run.env

    @property
    def receiver_url(self) -> str:
        return self.receiver.url()

    async def records(self, scenario: str) -> list[Record]:
        """The scenario's requests the receiver has answered, in the order they arrived."""
        records = await ReceiverClient(self.session, self.receiver_url).records(scenario)
        return [r for r in records if r.answered is not None]

    async def wait_arrivals(self, scenario: str, target: int, timeout: float) -> bool:
        """Whether `target` deliveries of the scenario were answered within `timeout`."""
        held, _ = await poll(
            self.arrivals.refresh, lambda counts: counts.get(scenario, 0) >= target, timeout, 0.2
        )
        return held

    async def close(self) -> dict[str, int | None]:
        """Stop the receiver, drop the database and the broker objects; its exit code."""
        await self.arrivals.stop()
        await self.session.close()
        code = self.receiver.stop()
        await _cleanup(self.env)
        await self.presence.close()
        return {self.receiver.name: code}


async def _cleanup(env: FreshEnv) -> None:
    try:
        await env.delete_broker_objects()
        await env.drop_database()
    except Exception as exc:  # leave the run's figures intact
        log(f"cleanup failed: {exc!r}")


@dataclass(frozen=True)
class Pipeline:
    rig: Rig
    stack: Stack
    orgs: dict[str, dict[str, str]]
    pool: asyncpg.Pool
    amqp: load.AmqpProducer

    @classmethod
    async def start(cls, rig: Rig) -> Pipeline:
        """api, dispatcher(s), 2 senders, and the bench's organizations and subscriptions."""
        log("stack: api, dispatcher, 2 senders")
        stack = Stack(rig.env.env(), rig.run.logs)
        try:
            await stack.start_api()
            await stack.add_dispatcher("dispatcher")
            for i in range(DISPATCHERS - 1):
                await stack.add_dispatcher(f"dispatcher-{chr(ord('a') + i)}")
            for i in (1, 2):
                await stack.add_sender(f"sender-{i}")
            orgs = await create_orgs(stack.env, ORGS)
            for org, count in SUBSCRIPTIONS:
                await subscribe(rig, stack.api_url, orgs[org]["apiToken"], org, count)
            pool = await asyncpg.create_pool(rig.env.dsn, min_size=1, max_size=3)
            amqp = await load.AmqpProducer(rig.env.amqp_url, rig.env.name).start()
        except BaseException:
            await stack.stop_all()
            raise
        return cls(rig, stack, orgs, pool, amqp)

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    def token(self, org: str) -> str:
        return self.orgs[org]["apiToken"]

    def org_id(self, org: str) -> str:
        return self.orgs[org]["organizationId"]

    def processes(self) -> list[Process]:
        """Every process whose CPU a window counts: the receiver, then each service."""
        return [self.rig.receiver, *self.stack.started]

    def profiled(self) -> dict[str, Process]:
        """The services py-spy may sample, by the names the reports use."""
        api = self.stack.api
        assert api is not None
        return {"api": api, "dispatcher": self.stack.dispatcher, "sender-1": self.stack.senders[0]}

    async def close(self) -> dict[str, int | None]:
        """Stop every service, the last started first; each one's exit code."""
        await self.amqp.close()
        await self.pool.close()
        return await self.stack.stop_all()


async def subscribe(rig: Rig, api_url: str, token: str, scenario: str, count: int) -> None:
    for n in range(count):
        async with rig.session.post(
            f"{api_url}/api/v1/webhook-subscriptions",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "name": f"bench {scenario} {n}",
                "webhookUrl": f"{rig.receiver_url}/{scenario}/{n}",
                "events": ["MAPPING_COMPLETED"],
            },
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"subscription: HTTP {response.status} {await response.text()}")
