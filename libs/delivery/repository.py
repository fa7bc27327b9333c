"""Every SQL statement the delivery engine runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from libs.delivery.disabling import Disablement, disable_endpoint
from libs.delivery.endpoint_cache import EndpointCache, EndpointSettings
from libs.domain.endpoint_kinds import ORG_SIGNED_KINDS, DeliveryStatus, EndpointKind
from libs.infra.batching import Batcher
from libs.infra.broker.messages import DeliveryTask

# The history tables are partitioned by their event's day (migration 0007): every statement
# here names the event id beside the delivery id, so that PostgreSQL reads one partition
# instead of probing each day's index (40 times the work with a month of partitions).
# _LOAD reaches each row through a LATERAL subquery with LIMIT 1, which cannot be flattened
# into a join: joined plainly, a day's partition of some 10,000 rows was read by a
# sequential scan testing every row against the batch's `= ANY` array, then hash-joined
# (28 ms for 100 deliveries against 1 ms before partitioning; 2-2.6 ms as it is now:
# python -m benchmarks.retention_cost).
#
# Per (delivery id, attempt number) pair of a batch (`ord` says which): the delivery's state,
# its endpoint and event ids, and, when a redelivered message finds its attempt already
# recorded, that attempt's outcome. The endpoint's own settings come from the replica's
# cache (endpoint_cache.py), read with _ENDPOINTS on a miss.
_LOAD = """
SELECT want.ord, d.status, d.attempt_count, d.schedule_start, d.endpoint_id, d.event_id,
       d.next_attempt_at, d.ordering_key,
       a.succeeded AS recorded_succeeded, a.http_status AS recorded_http_status,
       (SELECT count(*) FROM delivery_attempts t
        WHERE t.delivery_id = d.id AND t.event_id = d.event_id AND t.event_id = ANY ($2::text[])
          AND t.http_status = 429
          AND t.attempt_number >= d.schedule_start AND t.attempt_number < want.attempt_number
       )::int AS throttled
FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY
    AS want (delivery_id, event_id, attempt_number, ord)
CROSS JOIN LATERAL (
    SELECT d.id, d.event_id, d.status, d.attempt_count, d.schedule_start, d.endpoint_id,
           d.next_attempt_at, d.ordering_key
    FROM deliveries d
    WHERE d.id = want.delivery_id AND d.event_id = want.event_id
      AND d.event_id = ANY ($2::text[])
    LIMIT 1
) d
LEFT JOIN LATERAL (
    SELECT a.succeeded, a.http_status FROM delivery_attempts a
    WHERE a.delivery_id = d.id AND a.event_id = d.event_id
      AND a.attempt_number = want.attempt_number AND a.event_id = ANY ($2::text[])
    LIMIT 1
) a ON true
"""

# What sending to an endpoint takes (endpoint_cache.py EndpointSettings). A
# per-job or report-job webhook without a secret of its own signs with its organization's
# (and, in the org secret's rotation window, with the org's previous one too); an agent sink
# gets its agent's retry_failed_push merged into config (the rules are read at send time,
# hence the cache's `agent:<id>` invalidation).
_ORG_SIGNED = sorted(kind.value for kind in ORG_SIGNED_KINDS)
_ENDPOINTS = """
SELECT e.id, e.organization_id, e.agent_id, e.kind, e.url_enc, e.url_masked,
       e.signature_scheme,
       CASE WHEN org_signed THEN o.webhook_secret_enc ELSE e.secret_enc END AS secret_enc,
       CASE WHEN org_signed THEN o.previous_webhook_secret_enc
            ELSE e.previous_secret_enc END AS previous_secret_enc,
       CASE WHEN org_signed THEN o.previous_webhook_secret_expires_at
            ELSE e.previous_secret_expires_at END AS previous_secret_expires_at,
       e.api_key_name, e.api_key_value_enc, e.additional_headers,
       CASE WHEN e.kind = 'AGENT_SINK' THEN e.config || jsonb_build_object(
                'retryFailedPush', ag.rules #> '{data_sinks,retry_failed_push}')
            ELSE e.config END AS config,
       ag.workspace_id, e.status AS endpoint_status, e.deactivated_reason
FROM endpoints e
JOIN organizations o ON o.id = e.organization_id
LEFT JOIN agents ag ON ag.id = e.agent_id
CROSS JOIN LATERAL (
    SELECT e.kind = ANY ($2::text[]) AND e.secret_enc IS NULL AS org_signed
) AS signer
WHERE e.id = ANY ($1::text[])
"""

# Agent sinks only: the completed job each delivery pushes (its event's mappingJobId, a job
# of the sink's organization and agent), results as stored JSON text so the engine embeds
# them without parsing. Per (event, organization, agent) triple, by `ord`.
_SINK_JOBS = """
SELECT want.ord, j.id AS job_id, j.completed_at AS job_completed_at, j.stats AS job_stats,
       j.results::text AS job_results_json
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
    AS want (event_id, organization_id, agent_id, ord)
JOIN events ev ON ev.id = want.event_id
JOIN mapping_jobs j ON j.id = ev.data ->> 'mappingJobId'
    AND j.organization_id = want.organization_id AND j.agent_id = want.agent_id
"""

# Attempts and their deliveries' new states for a whole batch, in one statement (one implicit
# transaction, one WAL flush). A redelivered message that re-sends the same attempt overwrites
# its row: counted once. Per input row (by `ord`): the delivery's status after it (NULL when it
# was not PENDING or no longer exists). A delivery id appears at most once
# per batch (the batcher's key): ON CONFLICT DO UPDATE cannot touch one row twice.
# Both writes happen only while the delivery is PENDING, under its row lock: two copies of one
# task (a redelivery racing the original) must not let the later, failed copy overwrite the
# attempt of a delivery the other copy already ended SUCCEEDED (found by `make chaos`). Rows
# are locked and inserted in id order so two concurrent batches never deadlock.
_RECORD = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[],
                         $6::int[], $7::text[], $8::text[], $9::bool[], $10::text[],
                         $11::timestamptz[], $12::text[], $13::bool[]) WITH ORDINALITY
        AS i (attempt_id, delivery_id, attempt_number, attempted_at, duration_ms, http_status,
              error, response_excerpt, succeeded, new_status, next_attempt_at, event_id,
              endpoint_failed, ord)
), open_delivery AS (
    SELECT d.id, d.event_id FROM deliveries d
    WHERE (d.id, d.event_id) IN (SELECT delivery_id, event_id FROM input)
      AND d.event_id = ANY ($12::text[]) AND d.status = 'PENDING'
    ORDER BY d.id
    FOR UPDATE
), attempt AS (
    INSERT INTO delivery_attempts (id, delivery_id, event_id, attempt_number, attempted_at,
                                   duration_ms, http_status, error, response_excerpt, succeeded)
    SELECT i.attempt_id, i.delivery_id, o.event_id, i.attempt_number, i.attempted_at,
           i.duration_ms, i.http_status, i.error, i.response_excerpt, i.succeeded
    FROM input i JOIN open_delivery o ON o.id = i.delivery_id
    ORDER BY i.delivery_id
    ON CONFLICT (delivery_id, attempt_number, event_id) DO UPDATE SET
        id = EXCLUDED.id,
        attempted_at = EXCLUDED.attempted_at,
        duration_ms = EXCLUDED.duration_ms,
        http_status = EXCLUDED.http_status,
        error = EXCLUDED.error,
        response_excerpt = EXCLUDED.response_excerpt,
        succeeded = EXCLUDED.succeeded
), updated AS (
    UPDATE deliveries d SET
        attempt_count = GREATEST(d.attempt_count, i.attempt_number),
        last_attempt_at = i.attempted_at,
        status = i.new_status,
        next_attempt_at = i.next_attempt_at,
        updated_at = now()
    FROM input i JOIN open_delivery o ON o.id = i.delivery_id
    WHERE d.id = i.delivery_id AND d.event_id = o.event_id AND d.event_id = ANY ($12::text[])
    RETURNING d.id, d.status, d.endpoint_id
), health AS (
    SELECT u.endpoint_id, bool_or(NOT i.endpoint_failed) AS healthy,
           bool_or(i.endpoint_failed) AS failed, min(i.attempted_at) AS since
    FROM updated u JOIN input i ON i.delivery_id = u.id
    WHERE i.endpoint_failed IS NOT NULL
    GROUP BY u.endpoint_id
), recovered AS (
    DELETE FROM endpoint_failures f
    WHERE f.endpoint_id IN (SELECT endpoint_id FROM health WHERE healthy)
), failing AS (
    INSERT INTO endpoint_failures (endpoint_id, failing_since)
    SELECT endpoint_id, since FROM health WHERE failed AND NOT healthy
    ORDER BY endpoint_id
    ON CONFLICT (endpoint_id) DO NOTHING
)
SELECT i.ord, u.status FROM input i LEFT JOIN updated u ON u.id = i.delivery_id
"""

# The endpoint's failing period (endpoint_failures, migration 0009) follows each batch's
# attempts in the CTEs after `updated`, per libs/domain/endpoint_health.py attempt_effect
# (the `endpoint_failed` column: NULL for an attempt that says nothing). A success ends the
# period (a healthy endpoint has no row: the DELETE finds nothing and writes nothing); a
# failure starts one unless one is running. Data-modifying CTEs run whether read or not.

# A share lock waits for a writer's commit or rollback (the api's manual retry holds the
# row FOR UPDATE while its task is being published).
_AWAIT_WRITERS = "SELECT 1 FROM deliveries WHERE id = $1 AND event_id = $2 FOR SHARE"

# DEAD, once; its endpoint's count of DEAD deliveries in a row goes up with it while the
# endpoint is failing. Per delivery marked: its endpoint and where its failing period stands.
_MARK_DEAD = """
WITH dead AS (
    UPDATE deliveries SET status = 'DEAD', next_attempt_at = NULL, updated_at = now()
    WHERE id = $1 AND event_id = $2 AND status = 'PENDING'
    RETURNING id, endpoint_id
), counted AS (
    UPDATE endpoint_failures f SET dead_in_a_row = f.dead_in_a_row + 1
    FROM dead WHERE f.endpoint_id = dead.endpoint_id
    RETURNING f.endpoint_id, f.failing_since, f.dead_in_a_row
)
SELECT dead.endpoint_id, counted.failing_since, COALESCE(counted.dead_in_a_row, 0) AS dead_in_a_row
FROM dead LEFT JOIN counted USING (endpoint_id)
"""

# A delivery of an endpoint that is INACTIVE (endpoint_health.parks): kept, not attempted.
_PARK = """
UPDATE deliveries SET status = 'PARKED', next_attempt_at = NULL, updated_at = now()
WHERE id = $1 AND event_id = $2 AND status = 'PENDING'
RETURNING id
"""

# A deferred step's new due time (engine.py: the reconciler must not take it for lost).
_POSTPONE = """
UPDATE deliveries SET next_attempt_at = $3 WHERE id = $1 AND event_id = $2 AND status = 'PENDING'
"""


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as the engine sends it: its state, its endpoint's settings and, for an
    agent sink, the job it pushes."""

    status: str
    attempt_count: int
    schedule_start: int
    endpoint: EndpointSettings
    recorded_succeeded: bool | None  # this attempt number was already recorded
    recorded_http_status: int | None
    next_attempt_at: datetime | None = None  # when its next step is due
    throttled: int = 0  # 429s of its current schedule before this attempt (retry_policy.py)
    # Agent sinks only: the job a mapping.completed delivery pushes.
    job_id: str | None = None
    job_completed_at: datetime | None = None
    job_stats: Any = None
    job_results_json: str | None = None
    ordering_key: str | None = None  # an ordered endpoint's keyed delivery (ordering.py)


@dataclass(frozen=True)
class AttemptRecord:
    attempt_id: str
    delivery_id: str
    event_id: str
    attempt_number: int
    attempted_at: datetime
    duration_ms: int
    http_status: int | None
    error: str | None
    response_excerpt: str | None
    succeeded: bool
    new_status: str
    next_attempt_at: datetime | None
    # What it says of its endpoint's health (endpoint_health.attempt_effect)
    endpoint_failed: bool | None = None


@dataclass(frozen=True)
class DeadMark:
    """A delivery just marked DEAD, and where its endpoint's failing period stands."""

    endpoint_id: str
    failing_since: datetime | None  # None: its endpoint is not failing (a success since)
    dead_in_a_row: int


# Loads come before the POST, so they wait for no timer: a batch is whatever arrived in the
# same event-loop turn plus whatever arrives while every write slot is busy (batching.py).
# Records come after it (only the ack waits): up to 5 ms for company. Sizes keep a
# statement's parameters small; write slots stay below the pool size.
LOAD_BATCH = {"max_items": 100, "max_delay_s": 0.0}
RECORD_BATCH = {"max_items": 200, "max_delay_s": 0.005}
MAX_CONCURRENT_BATCHES = 3


class DeliveryRepository:
    """The engine's SQL. `load` and `record` are batched across the replica's in-flight
    deliveries (libs/infra/batching.py): each caller still awaits its own row or its own
    committed record, so a message is acknowledged only after its attempt is stored."""

    def __init__(self, pool: asyncpg.Pool, *, listen_dsn: str | None = None) -> None:
        self._pool = pool
        # Caches once started, listening on `listen_dsn`; without it every load reads.
        self.endpoints = EndpointCache(self._read_endpoints, listen_dsn)
        self._loads: Batcher[tuple[DeliveryTask, int], DeliveryRow | None] = Batcher(
            self._load_many, max_concurrent_writes=MAX_CONCURRENT_BATCHES, **LOAD_BATCH
        )
        self._records: Batcher[AttemptRecord, str | None] = Batcher(
            self._record_many,
            key=lambda attempt: attempt.delivery_id,
            max_concurrent_writes=MAX_CONCURRENT_BATCHES,
            **RECORD_BATCH,
        )

    async def load(self, task: DeliveryTask, attempt_number: int) -> DeliveryRow | None:
        return await self._loads.submit((task, attempt_number))

    async def _load_many(self, wanted: list[tuple[DeliveryTask, int]]) -> list[DeliveryRow | None]:
        rows = await self._pool.fetch(
            _LOAD,
            [task.delivery_id for task, _ in wanted],
            [task.event_id for task, _ in wanted],
            [number for _, number in wanted],
        )
        return await self._with_endpoints(len(wanted), [(row["ord"] - 1, row) for row in rows])

    async def new_rows(self, tasks: Sequence[DeliveryTask]) -> list[DeliveryRow | None]:
        """The rows of deliveries their caller created a moment ago and holds the tasks of,
        without reading them: PENDING, no attempt yet, the schedule from attempt 1, due when
        inserted (a moment ago: a step deferred for less than half the re-drive bound then
        needs no statement to move its due time, engine.py `_defer`). The endpoint comes
        from the cache as for `load`; None where it no longer exists."""
        inserted = datetime.now(UTC)
        rows = [
            (
                position,
                {
                    "status": DeliveryStatus.PENDING.value,
                    "attempt_count": 0,
                    "schedule_start": 1,
                    "endpoint_id": task.endpoint_id,
                    "event_id": task.event_id,
                    "recorded_succeeded": None,
                    "recorded_http_status": None,
                    "next_attempt_at": inserted,
                    "throttled": 0,
                },
            )
            for position, task in enumerate(tasks)
        ]
        return await self._with_endpoints(len(tasks), rows)

    async def _with_endpoints(
        self, wanted: int, rows: list[tuple[int, Mapping[str, Any]]]
    ) -> list[DeliveryRow | None]:
        """Per wanted position, its delivery row with its endpoint's settings (and an agent
        sink's job); None where the delivery or its endpoint no longer exists."""
        endpoints = await self.endpoints.get_many(row["endpoint_id"] for _, row in rows)
        found: list[DeliveryRow | None] = [None] * wanted
        sinks: list[tuple[int, Mapping[str, Any], EndpointSettings]] = []
        for position, row in rows:
            endpoint = endpoints.get(row["endpoint_id"])
            if endpoint is None:
                continue  # deleted since: its deliveries go with it
            found[position] = _delivery_row(row, endpoint)
            if endpoint.kind == EndpointKind.AGENT_SINK:
                sinks.append((position, row, endpoint))
        if sinks:
            await self._add_sink_jobs(found, sinks)
        return found

    async def _read_endpoints(self, endpoint_ids: list[str]) -> list[EndpointSettings]:
        rows = await self._pool.fetch(_ENDPOINTS, endpoint_ids, _ORG_SIGNED)
        return [EndpointSettings(**dict(row)) for row in rows]

    async def _add_sink_jobs(
        self,
        found: list[DeliveryRow | None],
        sinks: list[tuple[int, Mapping[str, Any], EndpointSettings]],
    ) -> None:
        jobs = await self._pool.fetch(
            _SINK_JOBS,
            [row["event_id"] for _, row, _ in sinks],
            [endpoint.organization_id for _, _, endpoint in sinks],
            [endpoint.agent_id for _, _, endpoint in sinks],
        )
        for job in jobs:
            position = sinks[job["ord"] - 1][0]
            loaded = found[position]
            assert loaded is not None
            found[position] = replace(
                loaded,
                job_id=job["job_id"],
                job_completed_at=job["job_completed_at"],
                job_stats=job["job_stats"],
                job_results_json=job["job_results_json"],
            )

    async def await_writers(self, task: DeliveryTask) -> None:
        """Return once no open transaction holds the delivery row for update."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_AWAIT_WRITERS, task.delivery_id, task.event_id)

    async def record(self, attempt: AttemptRecord) -> str | None:
        """Store the attempt; the delivery's status after it, None (and nothing stored) when
        the delivery is no longer PENDING or no longer exists.
        """
        return await self._records.submit(attempt)

    async def _record_many(self, attempts: list[AttemptRecord]) -> list[str | None]:
        columns = (
            [a.attempt_id for a in attempts],
            [a.delivery_id for a in attempts],
            [a.attempt_number for a in attempts],
            [a.attempted_at for a in attempts],
            [a.duration_ms for a in attempts],
            [a.http_status for a in attempts],
            [a.error for a in attempts],
            [a.response_excerpt for a in attempts],
            [a.succeeded for a in attempts],
            [a.new_status for a in attempts],
            [a.next_attempt_at for a in attempts],
            [a.event_id for a in attempts],
            [a.endpoint_failed for a in attempts],
        )
        # Only deliveries locked while PENDING are written, so a concurrent delete cannot
        # break the batch: a deleted one simply comes back None, like an ended one.
        outcomes: list[str | None] = [None] * len(attempts)
        for row in await self._pool.fetch(_RECORD, *columns):
            outcomes[row["ord"] - 1] = row["status"]
        return outcomes

    async def mark_dead(self, task: DeliveryTask) -> DeadMark | None:
        """DEAD, and its endpoint's failing period; None when it was not PENDING."""
        row = await self._pool.fetchrow(_MARK_DEAD, task.delivery_id, task.event_id)
        if row is None:
            return None
        return DeadMark(row["endpoint_id"], row["failing_since"], row["dead_in_a_row"])

    async def park(self, task: DeliveryTask) -> bool:
        """PARKED (its endpoint is INACTIVE); False when it was not PENDING."""
        return await self._pool.fetchval(_PARK, task.delivery_id, task.event_id) is not None

    async def disable_endpoint(self, disablement: Disablement) -> bool:
        return await disable_endpoint(self._pool, disablement)

    async def postpone(self, task: DeliveryTask, due: datetime) -> None:
        await self._pool.execute(_POSTPONE, task.delivery_id, task.event_id, due)

    async def close(self) -> None:
        """Finish every collected load and record (after the consumers have stopped)."""
        await self._loads.close()
        await self._records.close()
        await self.endpoints.close()


def _delivery_row(row: Mapping[str, Any], endpoint: EndpointSettings) -> DeliveryRow:
    return DeliveryRow(
        status=row["status"],
        attempt_count=row["attempt_count"],
        schedule_start=row["schedule_start"],
        endpoint=endpoint,
        recorded_succeeded=row["recorded_succeeded"],
        recorded_http_status=row["recorded_http_status"],
        next_attempt_at=row["next_attempt_at"],
        throttled=row["throttled"],
        ordering_key=row.get("ordering_key"),
    )
