"""Recover an endpoint: re-send its PARKED, FAILED and DEAD deliveries since a time.

The one implementation behind every door's `POST …/{id}/recover`, the dashboard and
`hookpost recover`. Each delivery goes back through the pipeline as a manual retry does
(service.retry_delivery, through reopening.py): PENDING again with a fresh retry schedule,
its task published to the sender queue with confirms, its original eventId kept; those of an
ordered line keep its order (only the first of a line goes, the rest wait HELD). A batch's
status change commits only once every one of its tasks was confirmed, so a task that never
left never leaves a delivery PENDING; a delivery already PENDING (or HELD) is not picked, so
a second recover right after the first re-sends nothing twice.

Only an ACTIVE endpoint is recovered (409 otherwise): its deliveries would only be parked
again. Re-activate it first (PUT status ACTIVE), then recover, as on Svix. A job's webhook
has no PUT: its recover re-activates it, or the deliveries it parked after a 410 or a long
failure could never be sent; one disabled by a plan downgrade stays a 409.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from libs.domain import endpoint_health
from libs.domain.endpoint_kinds import (
    JOB_WEBHOOK_KINDS,
    DeliveryStatus,
    EndpointKind,
    EndpointStatus,
)
from services.api.audit import service as audit
from services.api.broker import BrokerUnavailable
from services.api.deliveries import reopening, repository
from services.api.errors import ConflictError, NotFoundError, ServiceUnavailableError
from services.api.metrics import PUBLISH_FAILURES
from services.api.state import ApiState

RECOVERABLE = [s.value for s in (DeliveryStatus.PARKED, DeliveryStatus.FAILED, DeliveryStatus.DEAD)]
BATCH = 500  # deliveries per transaction: their row locks last as long as their publishes
RECOVERED_ACTION = "endpoint.recovered"
REACTIVATED_ACTION = "endpoint.reactivated"


async def recover_endpoint(
    state: ApiState,
    org_id: str,
    endpoint_id: str,
    since: datetime,
    *,
    kind: EndpointKind | None = None,
) -> int:
    """Re-send the endpoint's PARKED, FAILED and DEAD deliveries created since `since`; how
    many. `kind`: the door asking (another door's endpoint is a 404); None for operators.
    A job's webhook INACTIVE for a 410 or a long failure is made ACTIVE first (see the top).

    404 for an unknown endpoint, 409 while it is INACTIVE, 503 when the broker does not
    confirm (what was confirmed before stays recovered: recover again for the rest)."""
    pool = state.pool
    target = await repository.recover_target(
        pool, org_id, endpoint_id, None if kind is None else kind.value
    )
    if target is None:
        raise NotFoundError(f"endpoint {endpoint_id!r} not found")
    if target["kind"] in JOB_WEBHOOK_KINDS and endpoint_health.parks(
        target["status"], target["deactivated_reason"]
    ):
        await repository.reactivate(pool, endpoint_id)
        await audit.record(
            pool,
            org_id,
            REACTIVATED_ACTION,
            {"endpointId": endpoint_id, "deactivatedReason": target["deactivated_reason"]},
        )
    elif target["status"] != EndpointStatus.ACTIVE.value:
        raise ConflictError(
            _why_not(target["kind"]),
            status=target["status"],
            deactivatedReason=target["deactivated_reason"],
        )
    recovered = 0
    while True:
        done = await _recover_batch(state, org_id, endpoint_id, since)
        recovered += done
        if done < BATCH:
            break
    await audit.record(
        pool,
        org_id,
        RECOVERED_ACTION,
        {"endpointId": endpoint_id, "since": since.isoformat(), "deliveries": recovered},
    )
    return recovered


def _why_not(kind: str) -> str:
    """The 409's message: what the caller can do about an INACTIVE endpoint."""
    if kind in JOB_WEBHOOK_KINDS:  # only a plan downgrade leaves one INACTIVE here
        return (
            "the job's webhook is INACTIVE since a plan downgrade: the organization's plan"
            " no longer allows it, so its deliveries would only be parked again"
        )
    return (
        "the endpoint is INACTIVE: re-activate it (status ACTIVE) before recovering,"
        " or its deliveries would only be parked again"
    )


async def organization_of(pool: asyncpg.Pool, endpoint_id: str) -> str:
    """The org an endpoint belongs to (operators name the endpoint alone); 404 if none."""
    org_id = await repository.endpoint_organization(pool, endpoint_id)
    if org_id is None:
        raise NotFoundError(f"endpoint {endpoint_id!r} not found")
    return org_id


async def _recover_batch(state: ApiState, org_id: str, endpoint_id: str, since: datetime) -> int:
    async with state.pool.acquire() as conn:
        async with conn.transaction():
            rows = await repository.claim_recoverable(
                conn, org_id, endpoint_id, RECOVERABLE, since, BATCH
            )
            if not rows:
                return 0
            try:
                released = await reopening.reopen(
                    conn, state.broker, state.topology, state.settings.payload_cap_bytes, rows
                )
            except BrokerUnavailable as exc:
                PUBLISH_FAILURES.labels(what="delivery").inc()
                # Raising inside the transaction rolls this batch's status changes back.
                raise ServiceUnavailableError(
                    "the message broker is unavailable; recover again to re-send the rest"
                ) from exc
        await reopening.publish_released(state.broker, state.topology, released)
    return len(rows)
