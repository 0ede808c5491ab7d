"""Standard Webhooks signing and verification (DESIGN §4), as pure functions of bytes.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` with the body bytes exactly
as sent; the signature is ``v1,`` + base64(HMAC-SHA256(key, content)). During a secret rotation
the ``webhook-signature`` header carries one space-separated signature per valid secret.

Secrets look like ``whsec_`` + base64 of the key bytes. No function here ever puts a secret
or a key into an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as _random
import time
from collections.abc import Mapping, Sequence

from hookd.domain import errors

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
DEFAULT_TOLERANCE = 300  # seconds

#: Key sizes, in bytes, allowed for secrets hookd generates or accepts for its endpoints.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

#: Header names, canonical first, then the alias Svix uses.
_ID_HEADERS = ("webhook-id", "svix-id")
_TIMESTAMP_HEADERS = ("webhook-timestamp", "svix-timestamp")
_SIGNATURE_HEADERS = ("webhook-signature", "svix-signature")

#: A Unix timestamp in whole seconds; the length bound keeps `int()` cheap on hostile input.
_TIMESTAMP = re.compile(r"[0-9]{1,20}")


def generate_secret(nbytes: int = 32) -> str:
    """A new secret: ``whsec_`` + standard base64 of `nbytes` random bytes (24..64)."""
    if not MIN_KEY_BYTES <= nbytes <= MAX_KEY_BYTES:
        raise ValueError(f"nbytes must be {MIN_KEY_BYTES}..{MAX_KEY_BYTES}, not {nbytes}")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The key bytes of `secret`, given as ``whsec_<base64>`` or as bare base64.

    Missing ``=`` padding is tolerated, as the reference verifiers do. Any non-empty key is
    accepted, so receivers can verify secrets other providers issued.

    Raises `errors.InvalidSecret` when the secret is empty or not standard base64.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    if not encoded:
        raise _invalid("the secret is empty")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise _invalid("the secret is not valid base64") from None
    if not key:
        raise _invalid("the secret is empty")
    return key


def validate_new_secret(secret: str) -> str:
    """Check a secret a user supplies for an endpoint, and return it unchanged.

    It must start with ``whsec_`` and decode to 24..64 bytes; otherwise `errors.InvalidSecret`.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise _invalid(f"the secret must start with {SECRET_PREFIX!r}")
    size = len(decode_secret(secret))
    if not MIN_KEY_BYTES <= size <= MAX_KEY_BYTES:
        raise _invalid(
            f"the secret must decode to {MIN_KEY_BYTES}..{MAX_KEY_BYTES} bytes, not {size}"
        )
    return secret


def secret_preview(secret: str) -> str:
    """A short form of `secret` that is safe to show, e.g. ``whsec_MfKQ…aSw``.

    Secrets too short to abbreviate without revealing most of them show only the prefix.
    """
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    encoded = secret.removeprefix(SECRET_PREFIX)
    if len(encoded) < 16:
        return f"{prefix}…"
    return f"{prefix}{encoded[:4]}…{encoded[-3:]}"


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message under one key."""
    return "v1," + base64.b64encode(_digest(key, msg_id, timestamp, body)).decode("ascii")


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, in the given order."""
    if not keys:
        raise ValueError("at least one key is required to sign")
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def verify(
    secrets: str | bytes | Sequence[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that `body` and `headers` carry a valid, fresh signature under one of `secrets`.

    `secrets` are ``whsec_`` / base64 strings (decoded with `decode_secret`) or raw key bytes.
    Header names are case-insensitive; the ``svix-*`` aliases are accepted too. The timestamp
    must be within `tolerance` seconds of `now` (default: the current time), either way.

    Raises `errors.VerificationError` saying why: missing headers, a timestamp that is not an
    integer, too old or too far in the future, or no matching signature. Raises
    `errors.InvalidSecret` when a secret itself is malformed or none is given.
    """
    keys = _keys(secrets)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _header(lowered, _ID_HEADERS)
    raw_timestamp = _header(lowered, _TIMESTAMP_HEADERS)
    signatures = _header(lowered, _SIGNATURE_HEADERS)
    missing = [
        names[0]
        for names, value in (
            (_ID_HEADERS, msg_id),
            (_TIMESTAMP_HEADERS, raw_timestamp),
            (_SIGNATURE_HEADERS, signatures),
        )
        if not value
    ]
    if missing:
        raise errors.VerificationError(f"missing header(s): {', '.join(missing)}")

    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise errors.VerificationError("webhook-timestamp is not an integer number of seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise errors.VerificationError(
            f"timestamp too old: {current - timestamp:.0f}s ago, tolerance is {tolerance}s"
        )
    if timestamp > current + tolerance:
        raise errors.VerificationError(
            f"timestamp too far in the future: {timestamp - current:.0f}s ahead, "
            f"tolerance is {tolerance}s"
        )

    offered = _v1_signatures(signatures)
    if not offered:
        raise errors.VerificationError("webhook-signature holds no v1 signature")
    expected = [_digest(key, msg_id, timestamp, body) for key in keys]
    # Compare every pair, so the time taken does not depend on which one matches.
    matched = [hmac.compare_digest(want, got) for want in expected for got in offered]
    if not any(matched):
        raise errors.VerificationError("no matching signature")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()


def _keys(secrets: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    given: Sequence[str | bytes] = [secrets] if isinstance(secrets, str | bytes) else secrets
    keys = [decode_secret(s) if isinstance(s, str) else bytes(s) for s in given]
    if not keys:
        raise _invalid("at least one secret is required to verify")
    if not all(keys):
        raise _invalid("a key is empty")
    return keys


def _header(headers: Mapping[str, str], names: Sequence[str]) -> str:
    """The first non-empty value among `names` (lower-case), or ``""``."""
    for name in names:
        value = headers.get(name, "").strip()
        if value:
            return value
    return ""


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a signature header; other versions and junk are skipped."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except ValueError:
            continue
    return found


def _invalid(message: str) -> errors.InvalidSecret:
    return errors.InvalidSecret(message, [errors.Problem("secret", message)])
