"""Prefixed, time-sortable identifiers (`evt_01J…`): a ULID body after a short type prefix.

The body is 26 Crockford base32 characters: 48 bits of Unix milliseconds then 80 random bits,
so ids sort by creation time (to the millisecond) and never collide in practice.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every pair of digits, so 10 bits become two characters in one lookup.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
#: 26 digits = 130 bits = 13 pairs, most significant first (the top two bits are always zero).
_SHIFTS = tuple(range(120, -1, -10))
#: ... of which the first 5 pairs hold the time (bits 80-129: shifted by 80 less) and the last
#: 8 the 80 random bits.
_TIME_SHIFTS = tuple(s - 80 for s in _SHIFTS[:5])
_RANDOM_SHIFTS = _SHIFTS[5:]

ENDPOINT = "ep"
EVENT = "evt"
DELIVERY = "dlv"
ATTEMPT = "att"
API_KEY = "key"
EVENT_TYPE = "et"
TENANT = "ten"


#: Random parts drawn from the OS at once (one `os.urandom` call, and the GIL it lets go of, per
#: this many ids instead of per id).
_POOL_IDS = 256


class _Entropy(threading.local):
    """Per thread: random bytes from `os.urandom`, handed out 10 at a time."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self) -> int:
        if self.at >= len(self.pool):
            self.pool = os.urandom(10 * _POOL_IDS)
            self.at = 0
        at = self.at
        self.at = at + 10
        return int.from_bytes(self.pool[at : at + 10], "big")

    def forget(self) -> None:
        self.pool, self.at = b"", 0


_entropy = _Entropy()
# a forked child must not hand out the random parts its parent will hand out too
os.register_at_fork(after_in_child=_entropy.forget)


#: The time part's 10 digits (5 pairs) of the last millisecond asked for, per thread.
class _Clock(threading.local):
    def __init__(self) -> None:
        self.millis = -1
        self.digits = ""


_clock = _Clock()


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A new id such as `evt_01HZY3…`; `now` (Unix seconds) pins the time part for tests."""
    millis = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    clock = _clock
    if millis != clock.millis:  # the 48-bit time is the top 50 bits: 5 pairs, the first 10 digits
        clock.digits = "".join([_PAIRS[(millis >> shift) & 1023] for shift in _TIME_SHIFTS])
        clock.millis = millis
    rand = _entropy.take()
    return f"{prefix}_{clock.digits}" + "".join(
        [_PAIRS[(rand >> shift) & 1023] for shift in _RANDOM_SHIFTS]
    )


#: A random byte to a digit: 256 is a multiple of 32, so each digit is uniform (5 random bits).
_BYTE_DIGIT = bytes.maketrans(bytes(range(256)), (_ALPHABET * 8).encode())


def new_ids(prefix: str, count: int, *, now: float | None = None) -> list[str]:
    """`count` new ids of one time (`now`, default the current time), in increasing order.

    Ids as `new_id` makes them (the same shape and time part, 80 random bits each), for many at
    once: one `os.urandom` call and one `bytes.translate`, and sorted, so a batch's ids follow
    its order and rows inserted in that order go to the end of each index on their id rather
    than all over it.
    """
    if count <= 0:
        return []
    head = new_id(prefix, now=now)[:-16]  # "<prefix>_" and the 10 time digits
    digits = os.urandom(16 * count).translate(_BYTE_DIGIT).decode("ascii")
    randoms = [digits[at : at + 16] for at in range(0, 16 * count, 16)]
    randoms.sort()
    return [head + random for random in randoms]


def has_prefix(ident: str, prefix: str) -> bool:
    """Whether `ident` looks like an id of the given kind (cheap shape check, not a lookup)."""
    head, sep, body = ident.partition("_")
    return sep == "_" and head == prefix and len(body) == 26
