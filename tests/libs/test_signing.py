"""v1 signatures: our verifier and Stripe's independent one must agree on every case."""

from __future__ import annotations

import time

import pytest
import stripe

from libs.domain.secrets import generate_signing_secret, mask_secret
from libs.domain.signing import SignatureVerificationError, sign_v1, verify_v1

BODY = b'{"id":"del_1","eventId":"evt_1","type":"mapping.completed","data":{"n":1}}'


def test_signature_verifies_with_ours_and_stripes() -> None:
    secret = generate_signing_secret()
    header = sign_v1(BODY, [secret])
    assert verify_v1(BODY, header, secret) == int(header.split(",")[0][2:])
    stripe.WebhookSignature.verify_header(BODY.decode(), header, secret, tolerance=300)


def test_known_vector_matches_the_documented_formula() -> None:
    import hashlib
    import hmac

    header = sign_v1(b"{}", ["whsec_abc"], timestamp=1717250400)
    expected = hmac.new(b"whsec_abc", b"1717250400.{}", hashlib.sha256).hexdigest()
    assert header == f"t=1717250400,v1={expected}"


def test_tampered_body_is_rejected_by_both() -> None:
    secret = generate_signing_secret()
    header = sign_v1(BODY, [secret])
    tampered = BODY.replace(b'"n":1', b'"n":2')
    with pytest.raises(SignatureVerificationError):
        verify_v1(tampered, header, secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(tampered.decode(), header, secret, tolerance=300)


def test_stale_timestamp_is_rejected_by_both() -> None:
    secret = generate_signing_secret()
    header = sign_v1(BODY, [secret], timestamp=int(time.time()) - 301)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify_v1(BODY, header, secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY.decode(), header, secret, tolerance=300)
    assert verify_v1(BODY, header, secret, tolerance_s=600)


def test_wrong_secret_is_rejected() -> None:
    header = sign_v1(BODY, [generate_signing_secret()])
    with pytest.raises(SignatureVerificationError, match="no signature matches"):
        verify_v1(BODY, header, generate_signing_secret())


def test_rotation_window_header_carries_both_signatures() -> None:
    old, new = generate_signing_secret(), generate_signing_secret()
    header = sign_v1(BODY, [new, old])
    assert header.count("v1=") == 2
    for secret in (old, new):
        assert verify_v1(BODY, header, secret)
        stripe.WebhookSignature.verify_header(BODY.decode(), header, secret, tolerance=300)
    assert verify_v1(BODY, header, [generate_signing_secret(), new])


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1717250400", "garbage"])
def test_malformed_headers_are_rejected(header: str) -> None:
    with pytest.raises(SignatureVerificationError):
        verify_v1(BODY, header, "whsec_x", now=1717250400)


def test_secret_shape_and_mask() -> None:
    import base64

    secret = generate_signing_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    masked = mask_secret(secret)
    assert masked == f"whsec_••••{secret[-4:]}"
    assert secret.removeprefix("whsec_")[:-4] not in masked
