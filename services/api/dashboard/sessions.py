"""Dashboard sessions: a random id in an HttpOnly cookie, its SHA-256 in PostgreSQL with the
org, a CSRF token and an expiry. Opened by an org API token (sign-in) or a portal link."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import asyncpg

from libs.domain.plans import Plan
from services.api.dashboard import repository


@dataclass(frozen=True)
class DashboardSession:
    organization_id: str
    organization_name: str
    plan: Plan
    csrf_token: str
    expires_at: datetime
    portal_link_id: str | None  # opened by a portal link: the delivery pages only
    frame_origin: str | None  # the one origin that may frame a portal session's pages

    @property
    def is_portal(self) -> bool:
        return self.portal_link_id is not None

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(
            self.csrf_token.encode(), str(presented).encode()
        )


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


async def start(
    pool: asyncpg.Pool,
    org_id: str,
    ttl_s: int,
    portal_link_id: str | None = None,
    not_after: datetime | None = None,
) -> tuple[str, datetime]:
    """A new session → (the cookie's value, when it expires). A portal session ends no later
    than its link (`not_after`)."""
    session_id = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    if not_after is not None:
        expires_at = min(expires_at, not_after)
    await repository.delete_expired(pool)  # sign-ins are rare: tidy up here, no timer needed
    await repository.insert_session(
        pool, _hash(session_id), org_id, secrets.token_urlsafe(32), portal_link_id, expires_at
    )
    return session_id, expires_at


async def load(pool: asyncpg.Pool, session_id: str | None) -> DashboardSession | None:
    if not session_id or len(session_id) > 200:
        return None
    row = await repository.live_session(pool, _hash(session_id))
    if row is None:
        return None
    # repository.live_session names its columns after the fields.
    values = {field.name: row[field.name] for field in fields(DashboardSession)}
    return DashboardSession(**{**values, "plan": Plan(row["plan"])})


async def end(pool: asyncpg.Pool, session_id: str | None) -> None:
    if session_id:
        await repository.delete_session(pool, _hash(session_id))
