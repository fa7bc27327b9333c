"""Each engine keeps its endpoints' settings, and drops an entry as soon as it changes.

Every attempt needs its endpoint's URL, secrets, headers and config. Read with each delivery,
they made every load an eight-table join, the costliest statement of the whole sender
(BENCHMARKS.md). They change rarely, so they are cached here, and kept exact:

- PostgreSQL announces every change itself. Triggers (migration 0005) NOTIFY channel
  `hookpost_config` with `endpoint:<id>`, `organization:<id>` or `agent:<id>` when an update
  or delete of such a row commits; a LISTEN connection drops the entries concerned.
- A read that raced a change is not stored: a read notes the invalidation generation
  before it starts and stores its rows only if no notification arrived in between.
- Nothing is cached while the LISTEN connection is not up (every lookup reads the
  database), and the cache is emptied whenever it goes down, so a notification missed
  during an outage cannot leave a stale entry. The connection is checked every few seconds.
- What depends on the clock is decided at use: the previous secret signs only until it
  expires (`EndpointSettings.previous_secret`).
- An entry is read again once it is MAX_AGE_S old, whatever the notifications said: a change
  no trigger announced (made with `session_replication_role = replica`, as some restore and
  replication tools do) reaches every replica within that time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from libs.infra.crypto import decrypt, decrypt_optional

log = logging.getLogger("hookpost.delivery")

CHANNEL = "hookpost_config"
MAX_ENTRIES = 10_000  # endpoints per replica; beyond it the oldest entries go
CHECK_EVERY_S = 5.0  # how often the LISTEN connection proves it is alive
RECONNECT_AFTER_S = 1.0
MAX_AGE_S = 60.0  # the longest an entry is used without being read again


@dataclass(frozen=True)
class Plaintext:
    """An endpoint's encrypted settings, decrypted."""

    url: str
    secret: str | None
    previous_secret: str | None
    api_key_value: str | None


@dataclass(frozen=True)
class EndpointSettings:
    """What sending to one endpoint takes; the secret is already the one that signs (a
    per-job webhook without its own secret signs with its organization's)."""

    id: str
    organization_id: str
    agent_id: str | None
    kind: str
    url_enc: bytes
    url_masked: str
    signature_scheme: str
    secret_enc: bytes | None
    previous_secret_enc: bytes | None
    previous_secret_expires_at: datetime | None
    api_key_name: str | None
    api_key_value_enc: bytes | None
    additional_headers: dict[str, Any]
    config: dict[str, Any]
    workspace_id: str | None
    # INACTIVE for a reason that parks its deliveries (libs/domain/endpoint_health.py)?
    endpoint_status: str = "ACTIVE"
    deactivated_reason: str | None = None

    def previous_secret(self, now: datetime) -> bytes | None:
        """The rotated-out secret while it still signs alongside the new one."""
        expires = self.previous_secret_expires_at
        return self.previous_secret_enc if expires is not None and expires > now else None

    @functools.cached_property
    def plaintext(self) -> Plaintext:
        """Decrypted once per cache entry, not per attempt (AES-GCM of three or four values
        was a few % of a first attempt's CPU, BENCHMARKS.md): the plaintext lives as long
        as the entry, at most MAX_AGE_S. A value that does not decrypt raises on every use
        (nothing is cached then)."""
        return Plaintext(
            url=decrypt(self.url_enc),
            secret=decrypt_optional(self.secret_enc),
            previous_secret=decrypt_optional(self.previous_secret_enc),
            api_key_value=decrypt_optional(self.api_key_value_enc),
        )

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, then the rotated-out one while it
        still signs alongside it."""
        plain = self.plaintext
        secrets = [plain.secret] if plain.secret is not None else []
        if plain.previous_secret is not None and self.previous_secret(now) is not None:
            secrets.append(plain.previous_secret)
        return secrets


Loader = Callable[[list[str]], Awaitable[list[EndpointSettings]]]


class _Entry(NamedTuple):
    settings: EndpointSettings
    read_at: float  # time.monotonic() when the read that stored it started


class EndpointCache:
    """`get_many` answers from memory what it can and reads the rest with `load`.

    Without `listen_dsn` (or before `start`) nothing is ever cached: every lookup reads.
    """

    def __init__(self, load: Loader, listen_dsn: str | None = None) -> None:
        self._load = load
        self._dsn = listen_dsn
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self.rows_read = 0  # endpoint rows read from the database (tests, debugging)
        self.listener_pid: int | None = None  # the LISTEN connection's server process

    @property
    def listening(self) -> bool:
        return self._listening

    def start(self) -> EndpointCache:
        if self._dsn is not None and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(self._dsn))
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def get_many(self, endpoint_ids: Iterable[str]) -> dict[str, EndpointSettings]:
        """Per id, its settings; an id whose endpoint no longer exists is absent."""
        wanted = set(endpoint_ids)
        fresh_since = time.monotonic() - MAX_AGE_S
        found = {
            i: entry.settings
            for i in wanted
            if (entry := self._entries.get(i)) is not None and entry.read_at > fresh_since
        }
        missing = list(wanted - found.keys())
        if missing:
            generation = self._generation
            read_at = time.monotonic()
            loaded = await self._load(missing)
            self.rows_read += len(loaded)
            if self._listening and generation == self._generation:
                for settings in loaded:
                    self._store(settings, read_at)
            found.update((settings.id, settings) for settings in loaded)
        return found

    def _store(self, settings: EndpointSettings, read_at: float) -> None:
        self._entries.pop(settings.id, None)  # re-read: it becomes the newest
        self._entries[settings.id] = _Entry(settings, read_at)
        while len(self._entries) > MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]  # the oldest stored

    def invalidate(self, payload: str) -> None:
        """Drop what a `<kind>:<id>` notification concerns (anything unreadable: all)."""
        self._generation += 1
        kind, _, key = payload.partition(":")
        if kind == "endpoint":
            self._entries.pop(key, None)
        elif kind == "organization":
            self._drop(lambda s: s.organization_id == key)
        elif kind == "agent":
            self._drop(lambda s: s.agent_id == key)
        else:
            self._entries.clear()

    def _drop(self, concerned: Callable[[EndpointSettings], bool]) -> None:
        for endpoint_id in [i for i, e in self._entries.items() if concerned(e.settings)]:
            del self._entries[endpoint_id]

    def _stop_caching(self) -> None:
        self._listening = False
        self._generation += 1
        self._entries.clear()

    async def _listen_forever(self, dsn: str) -> None:
        while True:
            try:
                await self._listen(dsn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # _listen stopped caching on its way out
                log.warning(
                    "endpoint cache not listening, reading every time",
                    extra={"error": repr(exc)},
                )
            await asyncio.sleep(RECONNECT_AFTER_S)

    async def _listen(self, dsn: str) -> None:
        """Cache while one LISTEN connection is up and answering; return or raise when not."""
        conn = await asyncpg.connect(
            dsn, server_settings={"application_name": "hookpost endpoint cache"}
        )
        self.listener_pid = conn.get_server_pid()
        lost = asyncio.Event()

        def on_lost(_conn: asyncpg.Connection) -> None:
            self._stop_caching()  # at once: notifications stop arriving from now on
            lost.set()

        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(CHANNEL, self._on_notification)
            self._generation += 1  # reads that started before we listened store nothing
            self._listening = True
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), timeout=CHECK_EVERY_S)
                except TimeoutError:
                    # A connection can also die silently (no FIN): make it answer.
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=CHECK_EVERY_S)
        finally:
            self._stop_caching()
            conn.terminate()

    def _on_notification(
        self, _conn: asyncpg.Connection, _pid: int, _channel: str, payload: str
    ) -> None:
        self.invalidate(payload)
