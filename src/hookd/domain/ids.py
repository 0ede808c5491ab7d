"""Prefixed, time-sortable identifiers (`evt_01J…`): a ULID body after a short type prefix.

The body is 26 Crockford base32 characters: 48 bits of Unix milliseconds then 80 random bits,
so ids sort by creation time (to the millisecond) and never collide in practice.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every pair of digits, so 10 bits become two characters in one lookup.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
#: 26 digits = 130 bits = 13 pairs, most significant first (the top two bits are always zero).
_SHIFTS = tuple(range(120, -1, -10))

ENDPOINT = "ep"
EVENT = "evt"
DELIVERY = "dlv"
ATTEMPT = "att"
API_KEY = "key"
EVENT_TYPE = "et"
TENANT = "ten"


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A new id such as `evt_01HZY3…`; `now` (Unix seconds) pins the time part for tests."""
    millis = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    value = millis << 80 | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def has_prefix(ident: str, prefix: str) -> bool:
    """Whether `ident` looks like an id of the given kind (cheap shape check, not a lookup)."""
    head, sep, body = ident.partition("_")
    return sep == "_" and head == prefix and len(body) == 26
