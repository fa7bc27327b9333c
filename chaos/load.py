"""The chaos load: events into POST /api/v1/events at a steady rate, whatever is failing.

Open loop (a new request every 1/rate s) with a cap on requests in flight, so an outage
slows it down instead of piling up thousands of waiting requests. Every answer is kept:
202 → accepted (its eventId must end up delivered), anything else → counted by status,
with the time, so each fault's window can show what the API answered meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

# The types the load sends, with weights; every org is PRO, so all three are allowed.
EVENT_MIX: tuple[tuple[str, float], ...] = (
    ("mapping.completed", 0.57),
    ("mapping.failed", 0.3),
    ("mapping.error.resolved", 0.1),
    # rare, and all the slow receivers take (chaos/run.py LAYOUT)
    ("inventory.duplicate.resolved", 0.03),
)


def event_data(event_type: str, n: int) -> dict[str, Any]:
    job = f"job_chaos_{n}"
    if event_type == "mapping.completed":
        return {"mappingJobId": job, "status": "COMPLETED", "rowCount": n}
    if event_type == "mapping.failed":
        return {
            "mappingJobId": job,
            "status": "FAILED",
            "error": {"code": "CHAOS", "message": "the harness failed it"},
        }
    return {"mappingJobId": job, "errorId": f"err_{n}", "resolution": "merged"}


@dataclass(frozen=True)
class Answer:
    sent: float
    answered: float
    outcome: str  # "202", "503", …, or the client error's name
    event_id: str | None
    error_code: str | None = None  # the SPEC §4 error code of a non-2xx answer
    retry_after: str | None = None  # its Retry-After header (a shaped 503 must carry one)

    @property
    def took_s(self) -> float:
        return self.answered - self.sent


@dataclass
class LoadStats:
    answers: list[Answer] = field(default_factory=list)

    @property
    def accepted(self) -> list[str]:
        return [a.event_id for a in self.answers if a.event_id is not None]

    def outcomes(self, start: float = 0.0, end: float = float("inf")) -> Counter[str]:
        return Counter(a.outcome for a in self.answers if start <= a.sent < end)

    def unshaped(self) -> list[Answer]:
        """Non-2xx HTTP answers without a SPEC §4 error body."""
        return [
            a
            for a in self.answers
            if a.outcome.isdigit() and a.outcome != "202" and a.error_code is None
        ]


async def post_event(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    event_type: str,
    n: int,
    idempotency_key: str | None = None,
) -> Answer:
    sent = time.time()
    body = orjson.dumps({"type": event_type, "data": event_data(event_type, n)})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    try:
        async with session.post(f"{api_url}/api/v1/events", data=body, headers=headers) as response:
            payload = await response.read()
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(sent, time.time(), type(exc).__name__, None)
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        parsed = None
    if status == 202 and isinstance(parsed, dict) and "eventId" in parsed:
        return Answer(sent, time.time(), "202", parsed["eventId"])
    code = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        code = parsed["error"].get("code")
    return Answer(sent, time.time(), str(status), None, code, retry_after)


class LoadGenerator:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        tokens: list[str],
        *,
        rate_per_s: float,
        max_in_flight: int,
        seed: int,
    ) -> None:
        self._session = session
        self._api_url = api_url
        self._tokens = tokens
        self._interval = 1.0 / rate_per_s
        self._window = asyncio.Semaphore(max_in_flight)
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self.stats = LoadStats()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> LoadStats:
        types = [t for t, _ in EVENT_MIX]
        weights = [w for _, w in EVENT_MIX]
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            await self._window.acquire()
            token = self._rng.choice(self._tokens)
            event_type = self._rng.choices(types, weights)[0]
            task = asyncio.create_task(self._one(token, event_type, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            next_at = max(next_at + self._interval, time.monotonic() - 1.0)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)
        return self.stats

    async def _one(self, token: str, event_type: str, n: int) -> None:
        try:
            self.stats.answers.append(
                await post_event(self._session, self._api_url, token, event_type, n)
            )
        finally:
            self._window.release()
