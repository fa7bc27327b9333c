"""Standard Webhooks signing in libs.domain.signing, checked against the `standardwebhooks`
package (the specification's reference library) as an independent verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import standardwebhooks

from libs.delivery.signatures import SigningKeys, UnsupportedSignatureScheme, signature_headers
from libs.domain.secrets import generate_signing_secret
from libs.domain.signing import (
    SignatureVerificationError,
    sign_standard_webhooks,
    standard_webhooks_headers,
    verify_standard_webhooks,
)

BODY = b'{"id":"del_1","eventId":"evt_1","type":"mapping.completed","data":{"n":1}}'


def test_known_vector_matches_the_specification() -> None:
    # The example of the Standard Webhooks specification (and of its reference libraries).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign_standard_webhooks(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}', [secret]
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_follows_the_documented_formula() -> None:
    secret = generate_signing_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"evt_1.1717250400." + BODY, hashlib.sha256).digest()
    signature = sign_standard_webhooks("evt_1", 1717250400, BODY, [secret])
    assert signature == "v1," + base64.b64encode(expected).decode()


def test_the_reference_library_verifies_our_headers_and_we_verify_its_signatures() -> None:
    secret = generate_signing_secret()
    now = int(time.time())
    headers = standard_webhooks_headers("evt_1", now, BODY, [secret])
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["eventId"] == "evt_1"

    from datetime import UTC, datetime

    theirs = standardwebhooks.Webhook(secret).sign(
        "evt_9", datetime.fromtimestamp(now, UTC), BODY.decode()
    )
    assert verify_standard_webhooks(BODY, "evt_9", str(now), theirs, secret) == now


def test_rotation_signs_with_every_secret_space_separated() -> None:
    new, old, other = (generate_signing_secret() for _ in range(3))
    now = int(time.time())
    headers = standard_webhooks_headers("evt_1", now, BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        assert verify_standard_webhooks(BODY, "evt_1", now, headers["webhook-signature"], secret)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(BODY, headers)
    with pytest.raises(SignatureVerificationError):
        verify_standard_webhooks(BODY, "evt_1", now, headers["webhook-signature"], other)
    # Any of several candidate secrets may match.
    assert verify_standard_webhooks(BODY, "evt_1", now, headers["webhook-signature"], [other, old])


@pytest.mark.parametrize(
    ("body", "msg_id", "shift", "fragment"),
    [
        (BODY.replace(b'"n":1', b'"n":2'), "evt_1", 0, "no signature matches"),
        (BODY, "evt_2", 0, "no signature matches"),
        (BODY, "evt_1", -301, "tolerance"),
        (BODY, "evt_1", 301, "tolerance"),
        (BODY, "", 0, "webhook-id"),
    ],
)
def test_tampering_and_stale_timestamps_are_rejected(
    body: bytes, msg_id: str, shift: int, fragment: str
) -> None:
    secret = generate_signing_secret()
    now = int(time.time())
    signature = sign_standard_webhooks("evt_1", now + shift, BODY, [secret])
    with pytest.raises(SignatureVerificationError, match=fragment):
        verify_standard_webhooks(body, msg_id, now + shift, signature, secret)


def test_tolerance_is_settable_and_malformed_headers_are_rejected() -> None:
    secret = generate_signing_secret()
    old = int(time.time()) - 1000
    signature = sign_standard_webhooks("evt_1", old, BODY, [secret])
    assert verify_standard_webhooks(BODY, "evt_1", old, signature, secret, tolerance_s=1200)
    for bad_ts in ("soon", ""):
        with pytest.raises(SignatureVerificationError, match="webhook-timestamp"):
            verify_standard_webhooks(BODY, "evt_1", bad_ts, signature, secret)
    for bad_sig in ("", "v2,abc", "v1,!!!notbase64"):
        with pytest.raises(SignatureVerificationError, match="no v1 signature"):
            verify_standard_webhooks(BODY, "evt_1", int(time.time()), bad_sig, secret)


def test_the_sender_picks_the_endpoints_scheme() -> None:
    secret = generate_signing_secret()
    now = int(time.time())
    v1 = signature_headers(SigningKeys("v1", [secret]), BODY, "del_1", "evt_1", now)
    assert set(v1) == {"X-Webhook-Signature"}
    standard = signature_headers(
        SigningKeys("standard-webhooks", [secret]), BODY, "del_1", "evt_1", now
    )
    assert set(standard) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert standard["webhook-id"] == "evt_1"  # the eventId: stable across attempts
    assert standard["webhook-timestamp"] == str(now)
    standardwebhooks.Webhook(secret).verify(BODY, standard)
    # A secret that is not whsec_ + base64 cannot sign this scheme: refused, not a crash.
    with pytest.raises(UnsupportedSignatureScheme):
        signature_headers(SigningKeys("standard-webhooks", ["whsec_"]), BODY, "d", "e", now)
