"""Organizations, their API tokens (only a SHA-256 of a token is ever stored) and the org
webhook secret that signs per-job and report-job webhooks (seed 004, "Team Settings")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.domain.secrets import generate_api_token, generate_signing_secret, mask_secret
from libs.infra import crypto
from services.api.audit import service as audit
from services.api.organizations import erasure, repository

WEBHOOK_SECRET_ROTATED = "organization.webhook_secret_rotated"
WEBHOOK_SECRET_REVEALED = "organization.webhook_secret_revealed"


class CreatedOrganization(BaseModel):
    organizationId: str  # camelCase: printed as the CLI's JSON
    apiToken: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create_organization(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, plan: Plan
) -> CreatedOrganization:
    org_id = new_id(IdPrefix.ORGANIZATION)
    token = generate_api_token()
    # The webhook secret exists before the org's first job webhook can be sent.
    secret = generate_signing_secret()
    async with _acquire(conn) as c, c.transaction():
        await repository.insert_organization(
            c, org_id, name, plan.value, crypto.encrypt(secret), mask_secret(secret)
        )
        await repository.insert_token(c, hash_token(token), org_id)
    return CreatedOrganization(organizationId=org_id, apiToken=token)


async def ensure_webhook_secret(conn: asyncpg.Connection | asyncpg.Pool, org_id: str) -> str:
    """The org's masked webhook secret, generating one for orgs created before they existed."""
    masked = await repository.webhook_secret_masked(conn, org_id)
    if masked is not None:
        return masked
    secret = generate_signing_secret()
    await repository.store_webhook_secret(
        conn, org_id, crypto.encrypt(secret), mask_secret(secret), replace=False
    )
    masked = await repository.webhook_secret_masked(conn, org_id)
    assert masked is not None  # set just now, or by a concurrent caller
    return masked


@dataclass(frozen=True)
class RotatedWebhookSecret:
    secret: str  # shown once
    previous_secret_expires_at: datetime | None  # until when the old one also signs


async def rotate_webhook_secret(
    pool: asyncpg.Pool, org_id: str, grace_s: int = 0
) -> RotatedWebhookSecret:
    """A new org webhook secret, returned once. The old one keeps signing beside it for
    `grace_s` seconds (deliveries carry both v1 signatures), so receivers can switch over
    without rejecting a delivery; 0 ends it at once."""
    secret = generate_signing_secret()
    async with pool.acquire() as conn, conn.transaction():
        await ensure_webhook_secret(conn, org_id)
        row = await repository.rotate_webhook_secret(
            conn, org_id, crypto.encrypt(secret), mask_secret(secret), grace_s
        )
        await audit.record(
            conn,
            org_id,
            WEBHOOK_SECRET_ROTATED,
            {"webhookSecretMasked": mask_secret(secret), "gracePeriodSeconds": grace_s},
        )
    return RotatedWebhookSecret(secret, row["previous_webhook_secret_expires_at"])


async def reveal_webhook_secret(pool: asyncpg.Pool, org_id: str) -> str:
    """The org webhook secret in plaintext (Team Settings): an explicit act, audited."""
    async with pool.acquire() as conn, conn.transaction():
        masked = await ensure_webhook_secret(conn, org_id)
        blob = await repository.webhook_secret_enc(conn, org_id)
        assert blob is not None  # ensured just now
        await audit.record(conn, org_id, WEBHOOK_SECRET_REVEALED, {"webhookSecretMasked": masked})
    return crypto.decrypt(blob)


async def erase_organization(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: str, requested_by: str
) -> dict[str, int] | None:
    """Erase every row of the organization's data (erasure.py), audited; the rows erased
    per kind, or None when it does not exist."""
    async with _acquire(conn) as c, c.transaction():
        return await erasure.erase(c, org_id, requested_by)


class _acquire:  # lowercase: used like a function
    """Accept a pool or a connection alike."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn
        self._ctx = conn.acquire() if isinstance(conn, asyncpg.Pool) else None

    async def __aenter__(self) -> asyncpg.Connection:
        return await self._ctx.__aenter__() if self._ctx else self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._ctx:
            await self._ctx.__aexit__(*exc)
