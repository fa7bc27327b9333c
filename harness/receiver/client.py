"""Reading the receiver process's records over HTTP (harness/receiver/standalone.py)."""

from __future__ import annotations

import aiohttp
import orjson

from harness.receiver.records import Record


class ReceiverClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _get(self, where: str, params: dict[str, str] | None = None) -> bytes:
        async with self.session.get(self.url(where), params=params) as response:
            response.raise_for_status()
            return await response.read()

    async def stats(self) -> dict[str, int]:
        """Requests answered so far, per group (cheap: polled while load runs)."""
        return orjson.loads(await self._get("/stats"))

    async def raw_records(self, group: str | None = None) -> bytes:
        return await self._get("/records" if group is None else f"/records/{group}")

    async def records(self, group: str | None = None) -> list[Record]:
        return [Record.from_row(row) for row in orjson.loads(await self.raw_records(group))]

    async def ok_at(self, path: str, event_id: str) -> float | None:
        """When `event_id` was first answered 2xx on `path` (None: not yet)."""
        return orjson.loads(await self._get("/seen", {"path": path, "event": event_id}))["okAt"]
