"""Rotating an endpoint's signing secret (subscriptions at once, destinations with a grace
window), apart from the rest of the endpoints domain (service.py) whose rows it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.secrets import generate_signing_secret
from services.api.audit import service as audit
from services.api.endpoints import service as endpoints
from services.api.errors import BadRequestError

MAX_GRACE_S = 86_400  # a rotated secret keeps signing for at most a day


@dataclass(frozen=True)
class RotatedSecret:
    secret: str  # shown once
    previous_secret_expires_at: datetime | None  # None: the old secret stopped at once


async def rotate_secret(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str, grace_s: int = 0
) -> str:
    """A new signing secret (returned once); the old one is valid for `grace_s` more seconds."""
    rotated = await rotate_secret_with_grace(pool, org_id, kind, endpoint_id, grace_s)
    return rotated.secret


async def rotate_secret_with_grace(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str, grace_s: int
) -> RotatedSecret:
    """As rotate_secret, also saying until when the old secret still signs.

    During the window the sender signs with both secrets (newest first). A second rotation
    inside a window keeps only the secret it replaces: at most two secrets sign at once.
    """
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise BadRequestError(f"gracePeriodSeconds must be between 0 and {MAX_GRACE_S}")
    secret = generate_signing_secret()
    async with pool.acquire() as conn, conn.transaction():
        record = await endpoints.install_secret(conn, org_id, kind, endpoint_id, secret, grace_s)
        if record is None:
            raise endpoints.not_found(kind, endpoint_id)
        await audit.record(
            conn,
            org_id,
            f"{endpoints.NOUNS[kind]}.secret_rotated",
            {"endpointId": endpoint_id, "gracePeriodSeconds": grace_s},
        )
    return RotatedSecret(secret, record["previous_secret_expires_at"])
