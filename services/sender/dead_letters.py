"""The consumer of `<prefix>.dead`: a delivery whose last attempt failed becomes DEAD.

The sender rejects a task with no attempts left; the sender queue dead-letters it here
(at-least-once). A poison message that hit the queue's delivery limit arrives here too.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryTask
from libs.worker.runtime import Verdict
from services.sender import metrics
from services.sender.repository import SenderRepository

log = logging.getLogger("hookpost.sender.dead")


class DeadLetterHandler:
    def __init__(self, repository: SenderRepository) -> None:
        self._repo = repository

    async def handle(self, body: bytes) -> Verdict:
        try:
            task = DeliveryTask.model_validate_json(body)
        except ValidationError:
            log.warning("unreadable dead-lettered message dropped")
            return Verdict.ACK
        ids = {
            "delivery_id": task.delivery_id,
            "event_id": task.event_id,
            "endpoint_id": task.endpoint_id,
        }
        telemetry.annotate(**ids, organization_id=task.organization_id)
        try:
            marked = await self._repo.mark_dead(task.delivery_id)
        except Exception:
            log.exception("could not mark a delivery DEAD, requeueing", extra=ids)
            return Verdict.REQUEUE
        if marked:
            metrics.DELIVERIES_FINISHED.labels("DEAD").inc()
            log.info("delivery DEAD", extra=ids)
        return Verdict.ACK
