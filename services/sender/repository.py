"""Every SQL statement the sender runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# The delivery, its endpoint (and the org's webhook secret for per-job webhooks) and, when a
# redelivered message finds its attempt already recorded, that attempt's outcome: one query.
# An agent sink also gets its agent's retry_failed_push (merged into config: the rules are
# read at send time) and the completed job it pushes (the event's mappingJobId, of this
# agent), results as stored JSON text so the sender embeds them without parsing.
_LOAD = """
SELECT d.status, d.attempt_count, d.schedule_start,
       e.kind, e.url_enc, e.url_masked, e.signature_scheme,
       CASE WHEN e.kind = 'JOB_WEBHOOK' THEN COALESCE(e.secret_enc, o.webhook_secret_enc)
            ELSE e.secret_enc END AS secret_enc,
       CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret_enc
       END AS previous_secret_enc,
       e.api_key_name, e.api_key_value_enc, e.additional_headers,
       CASE WHEN e.kind = 'AGENT_SINK' THEN e.config || jsonb_build_object(
                'retryFailedPush', ag.rules #> '{data_sinks,retry_failed_push}')
            ELSE e.config END AS config,
       a.succeeded AS recorded_succeeded, a.http_status AS recorded_http_status,
       e.agent_id, ag.workspace_id,
       j.id AS job_id, j.completed_at AS job_completed_at, j.stats AS job_stats,
       j.results::text AS job_results_json
FROM deliveries d
JOIN endpoints e ON e.id = d.endpoint_id
JOIN organizations o ON o.id = e.organization_id
LEFT JOIN agents ag ON ag.id = e.agent_id
LEFT JOIN events ev ON e.kind = 'AGENT_SINK' AND ev.id = d.event_id
LEFT JOIN mapping_jobs j ON j.id = ev.data ->> 'mappingJobId'
    AND j.organization_id = e.organization_id AND j.agent_id = e.agent_id
LEFT JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt_number = $2
WHERE d.id = $1
"""

# The attempt and the delivery's new state in one statement (one implicit transaction).
# A redelivered message that re-sends the same attempt overwrites its row: counted once.
# Both writes happen only while the delivery is PENDING, under its row lock: two copies of
# one task (a redelivery racing the original) must not let the later, failed copy overwrite
# the attempt of a delivery the other copy already ended SUCCEEDED (found by `make chaos`).
_RECORD = """
WITH open_delivery AS (
    SELECT id FROM deliveries WHERE id = $2 AND status = 'PENDING' FOR UPDATE
), attempt AS (
    INSERT INTO delivery_attempts (id, delivery_id, attempt_number, attempted_at,
                                   duration_ms, http_status, error, response_excerpt, succeeded)
    SELECT $1::text, open_delivery.id, $3::int, $4::timestamptz, $5::int, $6::int, $7::text,
           $8::text, $9::boolean
    FROM open_delivery
    ON CONFLICT (delivery_id, attempt_number) DO UPDATE SET
        id = EXCLUDED.id,
        attempted_at = EXCLUDED.attempted_at,
        duration_ms = EXCLUDED.duration_ms,
        http_status = EXCLUDED.http_status,
        error = EXCLUDED.error,
        response_excerpt = EXCLUDED.response_excerpt,
        succeeded = EXCLUDED.succeeded
)
UPDATE deliveries SET
    attempt_count = GREATEST(attempt_count, $3),
    last_attempt_at = $4,
    status = $10,
    next_attempt_at = $11,
    updated_at = now()
FROM open_delivery
WHERE deliveries.id = open_delivery.id
RETURNING deliveries.status
"""

# A share lock waits for a writer's commit or rollback (the api's manual retry holds the
# row FOR UPDATE while its task is being published).
_AWAIT_WRITERS = "SELECT 1 FROM deliveries WHERE id = $1 FOR SHARE"

_MARK_DEAD = """
UPDATE deliveries SET status = 'DEAD', next_attempt_at = NULL, updated_at = now()
WHERE id = $1 AND status = 'PENDING'
RETURNING id
"""


@dataclass(frozen=True)
class DeliveryRow:
    status: str
    attempt_count: int
    schedule_start: int
    kind: str
    url_enc: bytes
    url_masked: str
    signature_scheme: str
    secret_enc: bytes | None
    previous_secret_enc: bytes | None
    api_key_name: str | None
    api_key_value_enc: bytes | None
    additional_headers: dict[str, Any]
    config: dict[str, Any]
    recorded_succeeded: bool | None  # this attempt number was already recorded
    recorded_http_status: int | None
    # Agent sinks only: the sink's agent and the job a mapping.completed delivery pushes.
    agent_id: str | None = None
    workspace_id: str | None = None
    job_id: str | None = None
    job_completed_at: datetime | None = None
    job_stats: Any = None
    job_results_json: str | None = None


@dataclass(frozen=True)
class AttemptRecord:
    attempt_id: str
    delivery_id: str
    attempt_number: int
    attempted_at: datetime
    duration_ms: int
    http_status: int | None
    error: str | None
    response_excerpt: str | None
    succeeded: bool
    new_status: str
    next_attempt_at: datetime | None


class SenderRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, delivery_id: str, attempt_number: int) -> DeliveryRow | None:
        row = await self._pool.fetchrow(_LOAD, delivery_id, attempt_number)
        return None if row is None else DeliveryRow(**dict(row))

    async def await_writers(self, delivery_id: str) -> None:
        """Return once no open transaction holds the delivery row for update."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_AWAIT_WRITERS, delivery_id)

    async def record(self, attempt: AttemptRecord) -> str | None:
        """Store the attempt; the delivery's status after it, None (and nothing stored) when
        the delivery is no longer PENDING or no longer exists.
        """
        return await self._pool.fetchval(
            _RECORD,
            attempt.attempt_id,
            attempt.delivery_id,
            attempt.attempt_number,
            attempt.attempted_at,
            attempt.duration_ms,
            attempt.http_status,
            attempt.error,
            attempt.response_excerpt,
            attempt.succeeded,
            attempt.new_status,
            attempt.next_attempt_at,
        )

    async def mark_dead(self, delivery_id: str) -> bool:
        return await self._pool.fetchval(_MARK_DEAD, delivery_id) is not None
