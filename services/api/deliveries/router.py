from __future__ import annotations

from fastapi import APIRouter, status

from libs.domain.endpoint_kinds import DeliveryStatus
from services.api.auth import Org
from services.api.deliveries import service
from services.api.deliveries.schemas import RetryAccepted
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/deliveries", tags=["deliveries"], route_class=ApiRoute)


@router.post(
    "/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=RetryAccepted
)
async def retry_delivery(delivery_id: str, state: State, org: Org) -> RetryAccepted:
    """Re-send a DEAD (or FAILED) delivery with the same eventId → 202 `{deliveryId, status}`.

    A delivery of an ordered line waits (HELD) for the delivery its line has in flight, if
    any, and goes when that one ends (docs/ordering.md).

    409 when the delivery is not DEAD/FAILED; 503 when the broker cannot take it right now
    (nothing changes then).
    """
    await service.retry_delivery(
        state.pool, state.broker, state.topology, state.settings, org.id, delivery_id
    )
    return RetryAccepted(delivery_id=delivery_id, status=DeliveryStatus.PENDING.value)
