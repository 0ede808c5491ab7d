"""Prefixed, time-sortable identifiers (`evt_01J…`): a ULID body after a short type prefix.

The body is 26 Crockford base32 characters: 48 bits of Unix milliseconds then 80 random bits,
so ids sort by creation time (to the millisecond) and never collide in practice.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

ENDPOINT = "ep"
EVENT = "evt"
DELIVERY = "dlv"
ATTEMPT = "att"
API_KEY = "key"
TENANT = "ten"


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A new id such as `evt_01HZY3…`; `now` (Unix seconds) pins the time part for tests."""
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(ident: str, prefix: str) -> bool:
    """Whether `ident` looks like an id of the given kind (cheap shape check, not a lookup)."""
    head, sep, body = ident.partition("_")
    return sep == "_" and head == prefix and len(body) == 26
