"""Prefixed, time-sortable identifiers (`evt_01J…`): a ULID body after a short type prefix.

The body is 26 Crockford base32 characters: 48 bits of Unix milliseconds then 80 random bits,
so ids sort by creation time (to the millisecond) and never collide in practice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

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


#: Random bytes drawn from the OS at once (one `os.urandom` call, and the GIL it lets go of, per
#: this many bytes instead of per id): 256 ids of `new_id`, 160 of `new_ids`.
_POOL_BYTES = 2560


class _Entropy(threading.local):
    """Per thread: random bytes from `os.urandom`, handed out a few at a time."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self, count: int) -> bytes:
        """`count` random bytes (a request larger than the pool is drawn on its own)."""
        if count > _POOL_BYTES:
            return os.urandom(count)
        if self.at + count > len(self.pool):
            self.pool = os.urandom(_POOL_BYTES)
            self.at = 0
        at = self.at
        self.at = at + count
        return self.pool[at : at + count]

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


def _time_digits(now: float | None) -> str:
    """The 10 digits of the time part: Unix milliseconds of `now` (default the current time)."""
    millis = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    clock = _clock
    if millis != clock.millis:  # the 48-bit time is the top 50 bits: 5 pairs, the first 10 digits
        clock.digits = "".join([_PAIRS[(millis >> shift) & 1023] for shift in _TIME_SHIFTS])
        clock.millis = millis
    return clock.digits


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A new id such as `evt_01HZY3…`; `now` (Unix seconds) pins the time part for tests."""
    rand = int.from_bytes(_entropy.take(10), "big")
    return f"{prefix}_{_time_digits(now)}" + "".join(
        [_PAIRS[(rand >> shift) & 1023] for shift in _RANDOM_SHIFTS]
    )


#: A random byte to a digit: 256 is a multiple of 32, so each digit is uniform (5 random bits).
_BYTE_DIGIT = bytes.maketrans(bytes(range(256)), (_ALPHABET * 8).encode())


def new_ids(prefix: str, count: int, *, now: float | None = None) -> list[str]:
    """`count` new ids of one time (`now`, default the current time), in increasing order.

    Ids as `new_id` makes them (the same shape and time part, 80 random bits each), for many at
    once: the random digits of them all come from one `bytes.translate` of random bytes (one
    byte a digit), and are sorted, so a batch's ids follow its order and rows inserted in that
    order go to the end of each index on their id rather than all over it.
    """
    if count <= 0:
        return []
    head = f"{prefix}_{_time_digits(now)}"
    digits = _entropy.take(16 * count).translate(_BYTE_DIGIT).decode("ascii")
    if count == 1:
        return [head + digits]
    randoms = [digits[at : at + 16] for at in range(0, 16 * count, 16)]
    randoms.sort()
    return [head + random for random in randoms]


def new_ids_at(prefix: str, times: Sequence[float]) -> list[str]:
    """One new id per time of `times`, in that order; the ids of a run of equal times are
    drawn together (`new_ids`), so they increase along the run: rows made in order, such as a
    batch's deliveries (which share their creation time), sort in that order."""
    made: list[str] = []
    at = 0
    while at < len(times):
        end = at + 1
        while end < len(times) and times[end] == times[at]:
            end += 1
        made += new_ids(prefix, end - at, now=times[at])
        at = end
    return made


def has_prefix(ident: str, prefix: str) -> bool:
    """Whether `ident` looks like an id of the given kind (cheap shape check, not a lookup)."""
    head, sep, body = ident.partition("_")
    return sep == "_" and head == prefix and len(body) == 26
