"""Encryption of secrets at rest (AES-256-GCM) and hashing of API keys.

The key comes from `HOOKD_SECRET_KEY` (urlsafe base64 of 32 bytes); the embedded default generates
one in the data directory on first run. Ciphertexts are `v1:<base64(nonce || ciphertext+tag)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hookd.domain import errors

_VERSION = "v1:"
_CHECK_PLAINTEXT = b"hookd secret key check"


def generate_key() -> str:
    """A new data-encryption key, as stored in `HOOKD_SECRET_KEY`."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class SecretBox:
    """Encrypts and decrypts short secrets with one AES-256-GCM key. The key never shows in repr."""

    __slots__ = ("_aead",)

    def __init__(self, key: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(key.strip().encode())
        except (binascii.Error, ValueError) as exc:
            raise errors.ConfigError("HOOKD_SECRET_KEY is not valid base64") from exc
        if len(raw) != 32:
            raise errors.ConfigError(
                "HOOKD_SECRET_KEY must be the urlsafe base64 of 32 bytes "
                '(generate one with: python -c "import hookd.crypto as c; print(c.generate_key())")'
            )
        self._aead = AESGCM(raw)

    def __repr__(self) -> str:
        return "SecretBox(key=**********)"

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(_VERSION):
            raise errors.ConfigError("stored secret has an unknown format")
        try:
            raw = base64.b64decode(token[len(_VERSION) :])
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise errors.ConfigError(
                "cannot decrypt stored secrets: HOOKD_SECRET_KEY is not the key they were "
                "encrypted with"
            ) from exc

    def check_value(self) -> str:
        """A ciphertext stored once per database, to detect a wrong key at start-up."""
        return self.encrypt(_CHECK_PLAINTEXT.decode())

    def verify_check_value(self, token: str) -> None:
        if self.decrypt(token) != _CHECK_PLAINTEXT.decode():
            raise errors.ConfigError("HOOKD_SECRET_KEY does not match this database")


API_KEY_PREFIX = "hk_"


def generate_api_key() -> str:
    """A new API key: `hk_` + 40 urlsafe characters (240 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(30)


def hash_api_key(key: str) -> str:
    """SHA-256 hex of a key; keys are long random strings, so a fast hash is the right tool."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str:
    return key[:10]


def same_secret(a: str, b: str) -> bool:
    """Constant-time equality of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())
