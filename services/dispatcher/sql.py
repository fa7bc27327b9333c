"""Every SQL statement the dispatcher runs (repository.py runs them; nothing else talks to
PostgreSQL for it). Each takes a whole batch of events: see repository.py for the round trips.
"""

from __future__ import annotations

from libs.domain import plan_gate
from libs.domain.endpoint_kinds import EndpointKind

BACKPRESSURE_ACTION = "events.dropped.backpressure"
# The plans whose agent sinks still hear completions (libs/domain/plan_gate.py decides).
SINK_PLANS = [plan.value for plan in plan_gate.plans_allowing_kind(EndpointKind.AGENT_SINK)]

# Marking an event dispatched also marks it published (a dispatcher has it, so it was): the
# api's mark, 50 ms later, then has no row version to write (BENCHMARKS.md, "Session 13").
# events and deliveries are partitioned by the event id's day (migration 0007): a join on an
# event id also says `= ANY (the batch's ids)`, so only the batch's days are read (the
# generic plans prune when they start); libs/delivery/repository.py says why.
# (a) + (b) + (c), and each event's lock, in one round trip for a batch of events. The
# INSERT's rows are invisible to the outer SELECT (one snapshot per statement), so
# `dispatched_at` is NULL for a new event and the stored value for a known one. An unknown
# organization gets `locked` NULL and no lock: CASE evaluates only the branch it picks.
# Events are inserted in id order, so two batches sharing events (twins) never deadlock.
# `inserted` is read in the select list so the events are stored before any lock is taken.
# The lock: `pg_try_advisory_lock` for a batch (`locked` false: the event's twin is being
# dispatched by another session right now), `pg_advisory_lock` (waits) when $9, for one
# event. The snapshot predates a wait for the lock, so `dispatched_at` may be stale then:
# the deliveries statement, run afterwards under the lock with a fresh snapshot, has the
# last word. The endpoint matching below is the only copy of the rule (SPEC §4).
# Backpressure counts deliveries still to be sent: PENDING and HELD (a line whose head keeps
# failing piles HELD ones up), never PARKED (issue 19, 4); one arm per status through its
# partial index (deliveries_pending_by_org, deliveries_held), both stopped at limit + 1.
PREPARE = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                         $6::text[], $7::timestamptz[], $14::text[]) WITH ORDINALITY
        AS i (id, organization_id, type, data, target_endpoint_id, target_delivery_id,
              created_at, ordering_key, ord)
), org AS (
    SELECT o.id, o.plan, (SELECT count(*) FROM (
        SELECT 1 FROM deliveries d
        WHERE d.organization_id = o.id AND d.status = 'PENDING'
        UNION ALL
        SELECT 1 FROM deliveries d
        WHERE d.organization_id = o.id AND d.status = 'HELD'
        LIMIT $8 + 1
    ) AS pending) AS pending
    FROM organizations o
    WHERE o.id IN (SELECT organization_id FROM input)
), inserted AS (
    INSERT INTO events (id, organization_id, type, data, target_endpoint_id,
                        target_delivery_id, created_at, published_at, ordering_key)
    SELECT i.id, org.id, i.type, i.data, i.target_endpoint_id, i.target_delivery_id,
           i.created_at, now(), i.ordering_key
    FROM input i JOIN org ON org.id = i.organization_id
    ORDER BY i.id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT
    i.ord,
    org.plan,
    existing.organization_id AS stored_organization_id,
    existing.dispatched_at,
    org.pending,
    CASE WHEN i.target_endpoint_id IS NULL THEN ARRAY(
        SELECT e.id || CASE WHEN e.status = 'ACTIVE' THEN '' ELSE $12 END
        FROM endpoints e
        LEFT JOIN agents a ON a.id = e.agent_id
        WHERE e.organization_id = i.organization_id
          -- an INACTIVE endpoint gets a PARKED delivery (its id suffixed with $12), unless
          -- its reason is one of $11 (libs/domain/endpoint_health.py parks)
          AND (e.status = 'ACTIVE'
               OR e.deactivated_reason IS NULL OR e.deactivated_reason <> ALL ($11::text[]))
          -- endpoint.disabled goes to the org's other endpoints
          AND NOT (i.type = $13 AND e.id = i.data ->> 'endpointId')
          AND i.type = ANY (e.events)
          -- a per-job webhook hears only its own job
          AND (e.mapping_job_id IS NULL OR e.mapping_job_id = i.data ->> 'mappingJobId')
          -- an agent sink hears completions of its agent's jobs, when the agent's rules
          -- opted in to outbound push and the plan still includes sinks
          AND (e.kind <> 'AGENT_SINK' OR (
              org.plan = ANY ($10::text[])
              AND a.status = 'ACTIVE'
              AND COALESCE((a.rules #>> '{data_sinks,auto_push_on_job_complete}')::boolean, false)
              AND EXISTS (
                  SELECT 1 FROM mapping_jobs j
                  WHERE j.id = i.data ->> 'mappingJobId'
                    AND j.organization_id = i.organization_id AND j.agent_id = e.agent_id
              )
          ))
        ORDER BY e.id
    ) ELSE ARRAY(
        SELECT e.id FROM endpoints e
        WHERE e.id = i.target_endpoint_id AND e.organization_id = i.organization_id
    ) END AS endpoint_ids,
    -- A keyed event only: the org's endpoints with ordered delivery (the caller keeps those
    -- of endpoint_ids). Nothing is evaluated for an event without a key.
    CASE WHEN i.ordering_key IS NOT NULL AND i.target_endpoint_id IS NULL THEN ARRAY(
        SELECT e.id FROM endpoints e
        WHERE e.organization_id = i.organization_id AND e.status = 'ACTIVE'
          AND e.config @> '{"orderedDelivery": true}'
    ) END AS ordered_endpoint_ids,
    (SELECT count(*) FROM inserted) AS inserted,
    CASE
        WHEN org.id IS NULL THEN NULL
        WHEN $9::boolean THEN pg_advisory_lock(hashtextextended(i.id, 0)) IS NOT NULL
        ELSE pg_try_advisory_lock(hashtextextended(i.id, 0))
    END AS locked
FROM input i
LEFT JOIN org ON org.id = i.organization_id
LEFT JOIN events existing ON existing.id = i.id AND existing.id = ANY ($1::text[])
ORDER BY i.ord
"""

# (d): every delivery of the batch in one statement, each only while its event is still
# open (not dispatched meanwhile). Two kinds are stored and not returned (nothing is
# published for them): PARKED ones, for INACTIVE endpoints, and an ordered endpoint's
# delivery of a keyed event (its `ordering_key` given), inserted HELD: its line's release,
# after the batch, decides when it goes (libs/delivery/ordering.py). The second part returns
# deliveries an earlier, interrupted run inserted but never sent (this statement's own new
# rows are not visible to it: one snapshot per statement), found through the events' ids
# (the (event_id, endpoint_id) index), never through every PENDING delivery; the third
# names the events found already dispatched.
# The events in $5 are finished by this statement as well, as FINISH does: marked
# dispatched, and their session locks released, each taken again for the transaction first
# (the subquery with OFFSET 0 is evaluated row by row before the unlock above it). The last
# part only makes the unlocks run (a CTE no part reads is never evaluated): its one row has
# a NULL event id.
# Events and deliveries are read by their keys, the state filtered after (OFFSET 0: the
# filter is not pushed into the scan). Given `dispatched_at IS NULL` or `status = 'PENDING'`
# in the scan, PostgreSQL's generic plan also read the partial index built on that state,
# and each event of each batch walked all of it, dead entries too, until vacuum: after a
# busy minute, more than a core (BENCHMARKS.md, "Session 19").
INSERT_DELIVERIES = """
WITH open_event AS (
    SELECT e.id, e.organization_id
    FROM (SELECT id, organization_id, dispatched_at FROM events WHERE id = ANY ($1::text[])
          OFFSET 0) AS e
    WHERE e.dispatched_at IS NULL
), inserted AS (
    INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,
                            next_attempt_at, ordering_key)
    SELECT candidate.id, open_event.id, candidate.endpoint_id, open_event.organization_id,
           CASE WHEN candidate.parked THEN 'PARKED'
                WHEN candidate.ordering_key IS NULL THEN 'PENDING' ELSE 'HELD' END,
           CASE WHEN candidate.parked OR candidate.ordering_key IS NOT NULL THEN NULL
                ELSE now() END,
           candidate.ordering_key
    FROM unnest($2::text[], $3::text[], $4::text[], $6::bool[], $7::text[])
        AS candidate (event_id, id, endpoint_id, parked, ordering_key)
    JOIN open_event ON open_event.id = candidate.event_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING event_id, id, endpoint_id, status
), marked AS (
    UPDATE events e SET dispatched_at = now(), published_at = COALESCE(e.published_at, now())
    FROM open_event
    WHERE e.id = open_event.id AND open_event.id = ANY ($5::text[]) AND e.id = ANY ($5::text[])
    RETURNING e.id
), unlocked AS (
    SELECT pg_advisory_unlock(relocked.key)
    FROM (
        SELECT key, pg_advisory_xact_lock(key)
        FROM (SELECT hashtextextended(id, 0) AS key FROM unnest($5::text[]) AS f (id)) AS k
        OFFSET 0
    ) AS relocked
)
SELECT event_id, id, endpoint_id, NULL AS ordering_key, true AS open FROM inserted
WHERE status = 'PENDING'
UNION ALL
SELECT d.event_id, d.id, d.endpoint_id, d.ordering_key, true
FROM open_event CROSS JOIN LATERAL (
    SELECT d.event_id, d.id, d.endpoint_id, d.ordering_key, d.status, d.attempt_count
    FROM deliveries d
    WHERE d.event_id = open_event.id AND d.event_id = ANY ($1::text[])
    OFFSET 0
) AS d
WHERE d.status = 'PENDING' AND d.attempt_count = 0
UNION ALL
SELECT wanted.id, NULL, NULL, NULL, false FROM unnest($1::text[]) AS wanted (id)
WHERE wanted.id NOT IN (SELECT id FROM open_event)
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL FROM (SELECT count(*) FROM unlocked) AS done
"""

# The batch's last statement: its delivered events are marked dispatched and every lock the
# batch took is released, in one round trip. The session locks go before the statement
# commits, so each marked event's lock is taken again for the transaction first (a session
# may hold both): a twin still cannot lock the event until its mark is visible, as when the
# unlock was a statement of its own. The aggregates are consumed before the select list is
# evaluated, so the UPDATE and the transaction locks are done before the unlock.
FINISH = """
WITH marked AS (
    UPDATE events e SET dispatched_at = now(), published_at = COALESCE(e.published_at, now())
    FROM unnest($1::text[]) AS done (id)
    WHERE e.id = done.id AND e.dispatched_at IS NULL AND e.id = ANY ($1::text[])
    RETURNING e.id
), held_until_commit AS (
    SELECT pg_advisory_xact_lock(hashtextextended(id, 0)) FROM unnest($1::text[]) AS e (id)
)
SELECT pg_advisory_unlock_all()
FROM (SELECT count(*) FROM marked) AS m, (SELECT count(*) FROM held_until_commit) AS h
"""

# Count a dropped event once: only the run that marks it dispatched adds it to its
# organization's entry for the hour, whose created_at is the hour's start ($3 is
# `YYYY-MM-DDTHH`, UTC): audit_log is partitioned by created_at (migration 0007), so the
# period's row is found by a key that includes it. One row per organization (ON CONFLICT
# DO UPDATE may touch a row once per statement), upserted in organization order: no deadlock
# between batches. Per event this run marked: the hour's total after this statement.
DROP = """
WITH marked AS (
    UPDATE events SET dispatched_at = now(), published_at = COALESCE(published_at, now())
    WHERE id = ANY ($1::text[]) AND dispatched_at IS NULL
    RETURNING id, organization_id
), counted AS (
    INSERT INTO audit_log (organization_id, action, details, dedup_key, created_at)
    SELECT organization_id, $2, jsonb_build_object('dropped', count(*), 'hour', $3::text), $3,
           ($3 || ':00:00+00')::timestamptz
    FROM marked
    GROUP BY organization_id
    ORDER BY organization_id
    ON CONFLICT (organization_id, action, dedup_key, created_at) WHERE dedup_key IS NOT NULL
    DO UPDATE SET
        details = jsonb_set(
            audit_log.details, '{dropped}',
            to_jsonb(
                COALESCE((audit_log.details ->> 'dropped')::bigint, 0)
                + (EXCLUDED.details ->> 'dropped')::bigint
            )
        ),
        updated_at = now()
    RETURNING organization_id, (details ->> 'dropped')::bigint AS total
)
SELECT marked.id, counted.total FROM marked JOIN counted USING (organization_id)
"""

# A redelivered copy of a dispatched event (handler.py, RECOVERED): the step each of its
# PENDING deliveries is at. Through the (event_id, endpoint_id) index.
PENDING_STEPS = """
SELECT id, endpoint_id, attempt_count, schedule_start, ordering_key
FROM deliveries
WHERE event_id = $1 AND status = 'PENDING'
ORDER BY id
"""

# Every lock the batch took, in one statement, when it ends without `finish`. The connection
# was the batch's alone from `prepare` on, so every advisory lock its session holds is one of
# them.
UNLOCK = "SELECT pg_advisory_unlock_all()"
