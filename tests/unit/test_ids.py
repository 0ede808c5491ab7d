"""Prefixed ULID-style ids: the encoding, the order, the shape check."""

from __future__ import annotations

from hookd.domain import ids

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(ident: str) -> int:
    value = 0
    for char in ident.partition("_")[2]:
        value = value * 32 + ALPHABET.index(char)
    return value


def test_the_time_part_is_the_milliseconds() -> None:
    ident = ids.new_id("evt", now=1_700_000_000.123)
    assert ident.startswith("evt_")
    assert len(ident) == 30
    assert decode(ident) >> 80 == 1_700_000_000_123
    assert decode(ident) < 2**128


def test_the_time_part_follows_the_time_asked_for_back_and_forth() -> None:
    # the time digits are kept per millisecond: a different time must never reuse them
    for millis in [5, 6, 5, 1_700_000_000_000, 5, 2**48 - 1, 0]:
        ident = ids.new_id("evt", now=(millis + 0.5) / 1000)
        assert decode(ident) >> 80 == millis


def test_known_time_encodes_like_the_ulid_spec() -> None:
    # ULID spec example: timestamp 1469918176385 encodes as 01ARYZ6S41 in the first 10 chars
    assert ids.new_id("x", now=1469918176.385)[2:12] == "01ARYZ6S41"


def test_ids_sort_by_time_and_do_not_collide() -> None:
    made = [ids.new_id("dlv", now=1_700_000_000 + i / 1000) for i in range(2000)]
    assert made == sorted(made)
    assert len({ids.new_id("dlv", now=1.0) for _ in range(10_000)}) == 10_000


def test_has_prefix() -> None:
    ident = ids.new_id("ep")
    assert ids.has_prefix(ident, "ep")
    assert not ids.has_prefix(ident, "evt")
    assert not ids.has_prefix("ep_short", "ep")


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    import os

    ids.new_id("x")  # the parent has random parts pooled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, ids.new_id("x").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[-16:] != ids.new_id("x")[-16:]
