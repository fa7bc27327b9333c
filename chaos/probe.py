"""The probe: a fresh event for the probe org, and when its receiver first answered it 2xx."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from chaos.load import Answer, post_event
from harness.receiver import ReceiverClient

PROBE_PATH = "/ok/probe"


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

    async def post_held(self, idempotency_key: str) -> Answer:
        """The probe org's event under the key the api holds before publishing (chaos only);
        its answer, if the api lives to give one."""
        self.serial += 1
        answer = await post_event(
            self.session,
            self.api_url,
            self.token,
            "mapping.completed",
            self.serial,
            idempotency_key=idempotency_key,
        )
        if answer.event_id is not None:
            self.accepted.append(answer.event_id)
        return answer

    async def ok_at_or_none(self, event_id: str, timeout: float) -> float | None:
        """When the receiver first answered `event_id` 2xx on the probe path (None: never)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ok_at = await self.receiver.ok_at(PROBE_PATH, event_id)
            if ok_at is not None:
                return ok_at
            await asyncio.sleep(0.2)
        return None
