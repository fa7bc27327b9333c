"""Encryption at rest, prefixed ids, retry policies and the payload cap."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from cryptography.exceptions import InvalidTag

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.envelope import build_envelope, capped_data
from libs.domain.ids import IdPrefix, new_id
from libs.domain.retry_policy import RetryPolicy, policy_for
from libs.infra import crypto


def test_encryption_round_trips_and_hides_plaintext() -> None:
    secret = "whsec_super-secret-value"
    blob = crypto.encrypt(secret)
    assert secret.encode() not in blob
    assert crypto.decrypt(blob) == secret
    assert crypto.encrypt(secret) != blob  # fresh nonce every time


def test_tampered_ciphertext_is_refused() -> None:
    blob = bytearray(crypto.encrypt("x"))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        crypto.decrypt(bytes(blob))


def test_ids_are_prefixed_and_sortable() -> None:
    first, second = new_id(IdPrefix.EVENT), new_id(IdPrefix.EVENT)
    assert first.startswith("evt_") and len(first) == 30
    assert first != second


@pytest.mark.parametrize(
    ("kind", "attempts", "delays", "retry_4xx"),
    [
        (EndpointKind.SUBSCRIPTION, 4, (60, 300, 1800), True),
        (EndpointKind.DESTINATION, 4, (60, 300, 1800), True),
        (EndpointKind.EXPORT_WEBHOOK, 4, (60, 300, 1800), True),
        (EndpointKind.JOB_WEBHOOK, 5, (5, 30, 300, 1800), True),
        (EndpointKind.AGENT_SINK, 3, (5, 30, 300), False),
    ],
)
def test_policy_per_front_door(
    kind: EndpointKind, attempts: int, delays: tuple[int, ...], retry_4xx: bool
) -> None:
    policy = policy_for(kind)
    assert policy.max_attempts == attempts
    assert [policy.delay_after(n) for n in range(1, attempts)] == list(delays[: attempts - 1])
    assert policy.delay_after(attempts) is None
    assert policy.retries(404) is retry_4xx
    assert policy.retries(503) and policy.retries(None)


def test_policy_refuses_delays_without_a_tier() -> None:
    with pytest.raises(ValueError, match="no retry tier"):
        RetryPolicy(max_attempts=2, delays_s=(7,))


def test_payload_cap_swaps_large_data_for_a_reference() -> None:
    created = datetime(2026, 6, 1, tzinfo=UTC)
    small = {"rows": 1}
    assert capped_data("evt_1", "mapping.completed", created, small, 64 * 1024) == small
    big = {"blob": "x" * 70_000}
    assert capped_data("evt_1", "mapping.completed", created, big, 64 * 1024) == {
        "truncated": True,
        "dataRef": "/api/v1/events/evt_1",
    }
    envelope = orjson.loads(build_envelope("del_1", "evt_1", "mapping.completed", created, small))
    assert envelope == {
        "id": "del_1",
        "eventId": "evt_1",
        "type": "mapping.completed",
        "apiVersion": "2026-06-01",
        "createdAt": "2026-06-01T00:00:00Z",
        "data": small,
    }
