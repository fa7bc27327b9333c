"""Portal links: an expiring, revocable, single-org link that opens the dashboard without
the org's API token, for embedding its delivery pages in the customer's own app (as Svix's
app portal does). Minted by the org itself (API token) or by an admin; only a SHA-256 of the
link's token is stored, and the token is shown once, inside the link's URL.

A link may name the one origin allowed to frame the pages (`frameOrigin`): the dashboard
sends `frame-ancestors` with it for sessions the link opened, and `'none'` otherwise.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

from libs.domain.ids import IdPrefix, new_id
from services.api.audit import service as audit
from services.api.errors import BadRequestError, NotFoundError
from services.api.portal_links import repository

PORTAL_PATH = "/app/portal/"
MIN_TTL_S = 60


@dataclass(frozen=True)
class MintedLink:
    id: str
    organization_id: str
    path: str  # /app/portal/<token>: the token is in here only, once
    frame_origin: str | None
    expires_at: datetime


def hash_link_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def normalise_origin(origin: str | None) -> str | None:
    """`https://app.example.com` (scheme, host, port): the only shape frame-ancestors gets.

    Anything else (paths, wildcards, quotes, spaces) is refused: the value ends up in a
    response header, and a wildcard would let any site frame the pages."""
    if origin is None or origin == "":
        return None
    try:
        parts = urlsplit(origin)
        host = parts.hostname or ""
    except ValueError as exc:  # e.g. an unclosed [IPv6 literal
        raise BadRequestError(
            "frameOrigin must be an origin such as https://app.example.com"
        ) from exc
    if (
        parts.scheme not in ("https", "http")
        or not host
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or not all(c.isalnum() or c in ".-:[]" for c in parts.netloc)
    ):
        raise BadRequestError("frameOrigin must be an origin such as https://app.example.com")
    return f"{parts.scheme}://{parts.netloc.lower()}"


async def mint(
    pool: asyncpg.Pool,
    org_id: str,
    ttl_s: int,
    max_ttl_s: int,
    frame_origin: str | None,
    created_by: str,
) -> MintedLink:
    if not MIN_TTL_S <= ttl_s <= max_ttl_s:
        raise BadRequestError(f"expiresInSeconds must be between {MIN_TTL_S} and {max_ttl_s}")
    origin = normalise_origin(frame_origin)
    if not await repository.organization_exists(pool, org_id):
        raise NotFoundError(f"organization {org_id!r} not found")
    token = secrets.token_urlsafe(32)
    link_id = new_id(IdPrefix.PORTAL_LINK)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with pool.acquire() as conn, conn.transaction():
        record = await repository.insert(
            conn, link_id, org_id, hash_link_token(token), origin, created_by, expires_at
        )
        await audit.record(
            conn,
            org_id,
            "portal_link.created",
            {"portalLinkId": link_id, "createdBy": created_by, "frameOrigin": origin},
        )
    return MintedLink(
        id=link_id,
        organization_id=org_id,
        path=PORTAL_PATH + token,
        frame_origin=origin,
        expires_at=record["expires_at"],
    )


async def usable(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    """The link a portal URL's token opens, or None (unknown, revoked or expired)."""
    return await repository.usable_by_token_hash(pool, hash_link_token(token))


async def revoke(pool: asyncpg.Pool, org_id: str, link_id: str) -> None:
    """Revoke the link; the sessions it opened end with it (they are checked against it)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.revoke(conn, org_id, link_id):
            raise NotFoundError.of("portal link", link_id)
        await audit.record(conn, org_id, "portal_link.revoked", {"portalLinkId": link_id})


async def list_links(pool: asyncpg.Pool, org_id: str) -> list[asyncpg.Record]:
    return await repository.list_for_org(pool, org_id)
