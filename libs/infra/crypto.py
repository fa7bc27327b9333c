"""Encryption at rest for secrets (AES-256-GCM): what the database holds is never plaintext."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.infra.settings import get_settings

# Only ever used when HOOKPOST_ENV=dev and no key was configured.
_DEV_KEY = base64.b64encode(b"hookpost-dev-key-not-for-prod!!!").decode()
_NONCE_BYTES = 12
_VERSION = b"\x01"


class EncryptionKeyMissing(RuntimeError):
    pass


@lru_cache
def _cipher(key_b64: str) -> AESGCM:
    key = base64.b64decode(key_b64)
    if len(key) != 32:
        raise EncryptionKeyMissing("HOOKPOST_ENCRYPTION_KEY must be base64 of 32 bytes")
    return AESGCM(key)


def _current_key() -> str:
    settings = get_settings()
    key = settings.encryption_key
    if not key:
        if not settings.is_dev:
            raise EncryptionKeyMissing("HOOKPOST_ENCRYPTION_KEY is required when HOOKPOST_ENV=prod")
        key = _DEV_KEY
    return key


def _current_cipher() -> AESGCM:
    return _cipher(_current_key())


def derived_key(purpose: str) -> bytes:
    """A 32-byte key for one purpose (e.g. signing download links), derived from the
    encryption key so no second secret has to be configured, and useless for decrypting."""
    master = base64.b64decode(_current_key())
    return hmac.new(master, b"hookpost/" + purpose.encode("utf-8"), hashlib.sha256).digest()


def encrypt(plaintext: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + _current_cipher().encrypt(nonce, plaintext.encode("utf-8"), None)


def decrypt(blob: bytes) -> str:
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    return _current_cipher().decrypt(nonce, ciphertext, None).decode("utf-8")


def encrypt_optional(plaintext: str | None) -> bytes | None:
    return None if plaintext is None else encrypt(plaintext)


def decrypt_optional(blob: bytes | None) -> str | None:
    return None if blob is None else decrypt(blob)


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")
