"""What a sender does with one delivery task, independent of the broker client.

    load delivery + endpoint ─► gone / not PENDING / stale ─► ACK
      └► sign, POST ─► record attempt + delivery state (one statement)
           success ........................ ACK
           4xx, policy says never retry ... FAILED, ACK
           attempts left .................. publish to a retry tier (confirmed), ACK
           none left ...................... REJECT → DLX → dead_letters.py → DEAD

`handle` answers a Verdict; acknowledging is main.py's job, and happens only after the
attempt is recorded and the next step confirmed, so a crashed sender's message is redelivered.
A redelivered message whose attempt is already recorded is not POSTed again: only its next
step is redone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from libs.domain.endpoint_kinds import DeliveryStatus, EndpointKind
from libs.domain.headers import DELIVERY_HEADER, EVENT_HEADER, RESERVED_HEADERS
from libs.domain.headers import HEADER_NAME as _TOKEN
from libs.domain.ids import IdPrefix, new_id
from libs.domain.retry_policy import RetryPolicy, policy_for, scaled_ms
from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryTask
from libs.infra.broker.topology import ATTEMPT_HEADER, SCHEDULE_START_HEADER
from libs.infra.crypto import decrypt, decrypt_optional
from libs.worker.runtime import Verdict
from services.sender import metrics
from services.sender.http_client import HttpResult
from services.sender.payloads import UnsendablePayload, request_body
from services.sender.repository import AttemptRecord, DeliveryRow
from services.sender.signatures import SigningKeys, UnsupportedSignatureScheme, signature_headers

log = logging.getLogger("hookpost.sender")

_BAD_VALUE = re.compile(r"[\r\n\x00]")


class Step(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # a non-retryable answer (agent sinks' 4xx)
    RETRY = "RETRY"
    EXHAUSTED = "EXHAUSTED"


@dataclass(frozen=True)
class Decision:
    step: Step
    delay_s: int | None = None

    @property
    def status(self) -> DeliveryStatus:
        if self.step is Step.SUCCEEDED:
            return DeliveryStatus.SUCCEEDED
        if self.step is Step.FAILED:
            return DeliveryStatus.FAILED
        return DeliveryStatus.PENDING  # a retry is due, or the DLX consumer will mark it DEAD


def decide(
    policy: RetryPolicy, succeeded: bool, http_status: int | None, attempt: int, schedule_start: int
) -> Decision:
    if succeeded:
        return Decision(Step.SUCCEEDED)
    if not policy.retries(http_status):
        return Decision(Step.FAILED)
    delay = policy.delay_after(attempt - schedule_start + 1)
    if delay is None:
        return Decision(Step.EXHAUSTED)
    return Decision(Step.RETRY, delay)


def endpoint_policy(kind: str, config: Mapping[str, Any]) -> RetryPolicy:
    try:
        endpoint_kind = EndpointKind(kind)
    except ValueError:
        endpoint_kind = EndpointKind.DESTINATION
    retry_failed_push = config.get("retryFailedPush", config.get("retry_failed_push", 2))
    try:
        retry_failed_push = max(0, min(3, int(retry_failed_push)))
    except (TypeError, ValueError):
        retry_failed_push = 2
    return policy_for(endpoint_kind, retry_failed_push)


def customer_headers(
    api_key_name: str | None, api_key_value: str | None, additional: Mapping[str, Any] | None
) -> dict[str, str]:
    """additionalHeaders then apiKeyName, minus reserved names and unsendable values."""
    chosen: dict[str, tuple[str, str]] = {}  # lower-case name -> (name, value)
    items = list((additional or {}).items())
    if api_key_name and api_key_value is not None:
        items.append((api_key_name, api_key_value))
    for name, value in items:
        if not isinstance(name, str) or not _TOKEN.match(name):
            continue
        if name.lower() in RESERVED_HEADERS:
            continue
        text = value if isinstance(value, str) else str(value)
        if _BAD_VALUE.search(text):
            continue
        chosen[name.lower()] = (name, text)
    return dict(chosen.values())


class Repository(Protocol):
    async def load(self, delivery_id: str, attempt_number: int) -> DeliveryRow | None: ...

    async def await_writers(self, delivery_id: str) -> None: ...

    async def record(self, attempt: AttemptRecord) -> str | None: ...


class Http(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], url_masked: str
    ) -> HttpResult: ...


class RetryPublisher(Protocol):
    async def publish_retry(
        self, body: bytes, delivery_id: str, delay_s: int, attempt: int, schedule_start: int
    ) -> None: ...


def _int_header(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class DeliverySender:
    def __init__(
        self,
        repository: Repository,
        http: Http,
        retries: RetryPublisher,
        *,
        retry_delay_scale: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        db_backoff: Callable[[], Awaitable[None]] = lambda: asyncio.sleep(0.5),
        record_tries: int = 5,
        sink_payload_cap_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self._repo = repository
        self._http = http
        self._retries = retries
        self._scale = retry_delay_scale
        self._now = now
        self._db_backoff = db_backoff
        self._record_tries = record_tries
        self._sink_cap = sink_payload_cap_bytes

    async def handle(self, body: bytes, headers: Mapping[str, Any]) -> Verdict:
        try:
            task = DeliveryTask.model_validate_json(body)
        except ValidationError as exc:
            log.warning("malformed delivery task, dead-lettering", extra={"error": str(exc)[:500]})
            return Verdict.REJECT
        return await self.handle_task(task, body, headers)

    async def handle_task(
        self,
        task: DeliveryTask,
        body: bytes | None,
        headers: Mapping[str, Any],
        *,
        created: DeliveryRow | None = None,
    ) -> Verdict:
        """`handle` for a task already parsed (`body` is its wire form, for the retry tier):
        the dispatcher's own first attempts come here with the task they just built and no
        body (it is serialised only if a retry is published) and, as `created`, the row of
        the delivery they just created, which is then not read."""
        ids = {
            "delivery_id": task.delivery_id,
            "event_id": task.event_id,
            "endpoint_id": task.endpoint_id,
        }
        telemetry.annotate(**ids, organization_id=task.organization_id)
        try:
            return await self._handle(task, body, headers, ids, created)
        except Exception:
            log.exception("delivery task failed, requeueing", extra=ids)
            return Verdict.REQUEUE

    async def _handle(
        self,
        task: DeliveryTask,
        body: bytes | None,
        headers: Mapping[str, Any],
        ids: dict[str, str],
        created: DeliveryRow | None,
    ) -> Verdict:
        header_attempt = _int_header(headers, ATTEMPT_HEADER)
        row = created or await self._repo.load(task.delivery_id, header_attempt or 1)
        if row is None:
            log.info("delivery no longer exists (endpoint deleted), skipping", extra=ids)
            return Verdict.ACK
        header_schedule = _int_header(headers, SCHEDULE_START_HEADER)
        if (
            row.status != DeliveryStatus.PENDING
            and header_schedule is not None
            and header_schedule > row.schedule_start
        ):
            # A manual retry publishes its task before its transaction reopens the delivery
            # commits (so a task that never left never leaves a delivery PENDING): wait for
            # that transaction, then judge the row it left behind.
            await self._repo.await_writers(task.delivery_id)
            row = await self._repo.load(task.delivery_id, header_attempt or 1)
            if row is None:
                log.info("delivery no longer exists (endpoint deleted), skipping", extra=ids)
                return Verdict.ACK
        attempt = header_attempt or row.attempt_count + 1
        schedule_start = header_schedule or row.schedule_start
        ids = {**ids, "attempt": attempt}  # type: ignore[dict-item]
        telemetry.annotate(attempt=attempt)
        if row.status != DeliveryStatus.PENDING:
            log.info("delivery already %s, skipping", row.status, extra=ids)
            return Verdict.ACK
        if row.attempt_count > attempt:
            log.info("stale copy of an earlier attempt, skipping", extra=ids)
            return Verdict.ACK
        policy = endpoint_policy(row.endpoint.kind, row.endpoint.config)

        if row.attempt_count == attempt and row.recorded_succeeded is not None:
            # Redelivered after this attempt was recorded: do not POST again, redo what follows.
            decision = decide(
                policy, row.recorded_succeeded, row.recorded_http_status, attempt, schedule_start
            )
            log.info("attempt already recorded, resuming its next step", extra=ids)
        else:
            # Attempt 1 carries the delivery's own id, so a /test call's deliveryId is the
            # first X-Webhook-Delivery; every later attempt gets a fresh one.
            attempt_id = task.delivery_id if attempt == 1 else new_id(IdPrefix.DELIVERY)
            result = await self._attempt(task, row, attempt_id, ids)
            decision = decide(policy, result.succeeded, result.http_status, attempt, schedule_start)
            attempted_at = self._now() - timedelta(milliseconds=result.duration_ms)
            if attempt == 1:
                metrics.observe_first_attempt(attempted_at, task.event_created_at)
            next_attempt_at = (
                self._now() + timedelta(milliseconds=scaled_ms(decision.delay_s, self._scale))
                if decision.delay_s is not None
                else None
            )
            status = await self._record(
                AttemptRecord(
                    attempt_id=attempt_id,
                    delivery_id=task.delivery_id,
                    attempt_number=attempt,
                    attempted_at=attempted_at,
                    duration_ms=result.duration_ms,
                    http_status=result.http_status,
                    error=result.error,
                    response_excerpt=result.response_excerpt,
                    succeeded=result.succeeded,
                    new_status=decision.status.value,
                    next_attempt_at=next_attempt_at,
                )
            )
            if status is None:
                log.info("delivery ended or deleted during the attempt, skipping", extra=ids)
                return Verdict.ACK

        if decision.step is Step.RETRY:
            assert decision.delay_s is not None
            await self._retries.publish_retry(
                body if body is not None else task.to_bytes(),
                task.delivery_id,
                decision.delay_s,
                attempt + 1,
                schedule_start,
            )
            return Verdict.ACK
        if decision.step is Step.EXHAUSTED:
            log.info("no attempts left, dead-lettering", extra=ids)
            return Verdict.REJECT
        metrics.DELIVERIES_FINISHED.labels(decision.status.value).inc()
        return Verdict.ACK

    async def _record(self, attempt: AttemptRecord) -> str | None:
        """Record a POST that already happened, riding out a short Postgres outage.

        Requeueing instead would POST the same attempt again; the statement is idempotent,
        so trying it again is safe.
        """
        for remaining in range(self._record_tries - 1, -1, -1):
            try:
                return await self._repo.record(attempt)
            except Exception:
                if remaining == 0:
                    raise
                log.warning(
                    "could not record an attempt, trying again",
                    extra={"delivery_id": attempt.delivery_id},
                    exc_info=True,
                )
                await self._db_backoff()
        raise AssertionError("unreachable")

    async def _attempt(
        self, task: DeliveryTask, row: DeliveryRow, attempt_id: str, ids: Mapping[str, Any]
    ) -> HttpResult:
        started = time.monotonic()
        try:
            # The door's payload shape: the envelope, or an agent sink's job payload.
            envelope = request_body(task, row, attempt_id, self._sink_cap)
            endpoint = row.endpoint
            secrets = [decrypt(endpoint.secret_enc)] if endpoint.secret_enc is not None else []
            previous = decrypt_optional(endpoint.previous_secret(datetime.now(UTC)))
            if previous is not None:
                secrets.append(previous)
            signed = signature_headers(
                SigningKeys(row.endpoint.signature_scheme, secrets),
                envelope,
                attempt_id,
                task.event_id,
                int(time.time()),
            )
            url = decrypt(row.endpoint.url_enc)
            api_key_value = decrypt_optional(row.endpoint.api_key_value_enc)
        except (UnsupportedSignatureScheme, UnsendablePayload) as exc:
            result = HttpResult(False, None, f"not sent: {exc}", None, 0, refused=True)
            self._observe(result, row, ids)
            return result
        except Exception:
            log.exception("could not decrypt the endpoint's settings", extra=ids)
            result = HttpResult(
                False,
                None,
                "not sent: the endpoint's stored settings could not be read",
                None,
                0,
                refused=True,
            )
            self._observe(result, row, ids)
            return result
        headers = customer_headers(
            row.endpoint.api_key_name, api_key_value, row.endpoint.additional_headers
        )
        headers.update(signed)
        headers[EVENT_HEADER] = task.type
        headers[DELIVERY_HEADER] = attempt_id
        headers["Content-Type"] = "application/json"
        result = await self._http.post(url, envelope, headers, row.endpoint.url_masked)
        metrics.ATTEMPT_SECONDS.observe(time.monotonic() - started)
        self._observe(result, row, ids)
        return result

    @staticmethod
    def _observe(result: HttpResult, row: DeliveryRow, ids: Mapping[str, Any]) -> None:
        metrics.ATTEMPTS.labels(metrics.outcome_class(result)).inc()
        extra = {
            **ids,
            "url": row.endpoint.url_masked,
            "http_status": result.http_status,
            "duration_ms": result.duration_ms,
        }
        if result.succeeded:
            log.debug("attempt succeeded", extra=extra)
        else:
            log.info("attempt failed: %s", result.error, extra=extra)
