"""An endpoint's secrets are decrypted once per cache entry, and which of them sign is still
decided at each attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.delivery.request import signed_request
from libs.domain.signing import SIGNATURE_HEADER
from libs.infra import crypto
from libs.infra.crypto import encrypt
from tests.support.factories import delivery_task, sender_delivery_row

TASK = delivery_task()


def test_an_entry_is_decrypted_once_not_per_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    row = sender_delivery_row(api_key_name="X-Key", api_key_value_enc=encrypt("k-1"))
    fresh = sender_delivery_row()  # another entry: the endpoint read again
    first = signed_request(TASK, row, "del_1", 1 << 20)
    assert first.url == "https://hooks.example.com/x?token=abc"
    assert first.headers["X-Key"] == "k-1"

    def no_cipher() -> object:
        raise AssertionError("decrypted again")

    monkeypatch.setattr(crypto, "_current_cipher", no_cipher)
    second = signed_request(TASK, row, "del_2", 1 << 20)
    assert second.url == first.url and second.headers["X-Key"] == "k-1"
    assert second.headers[SIGNATURE_HEADER].count("v1=") == 1
    # Another entry is decrypted on its own first use: here, it cannot be.
    with pytest.raises(ValueError, match="could not be read"):
        signed_request(TASK, fresh, "del_3", 1 << 20)


def test_the_previous_secret_signs_only_until_it_expires() -> None:
    now = datetime.now(UTC)
    row = sender_delivery_row(
        previous_secret_enc=encrypt("whsec_old"),
        previous_secret_expires_at=now + timedelta(hours=1),
    )
    endpoint = row.endpoint
    assert endpoint.signing_secrets(now) == ["whsec_unit", "whsec_old"]
    assert endpoint.signing_secrets(now + timedelta(hours=2)) == ["whsec_unit"]
    assert signed_request(TASK, row, "del_1", 1 << 20).headers[SIGNATURE_HEADER].count("v1=") == 2
