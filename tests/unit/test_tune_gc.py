"""A serving process tunes the garbage collector once it has started (hookd.server.tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hookd import server


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_long_lived_objects_leave_the_collectors_view_and_collections_come_less_often() -> None:
    held = [object() for _ in range(10)]  # noqa: F841 - alive across the freeze
    gc.unfreeze()
    frozen_before = gc.get_freeze_count()
    server.tune_gc()
    assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == server.GC_THRESHOLDS
    assert server.GC_THRESHOLDS[0] > 700  # Python's default gen-0 threshold
