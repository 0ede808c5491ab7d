"""A serving process tunes the garbage collector and the GIL's switch interval once it has started
(hookd.server.tune_gc, tune_threads)."""

from __future__ import annotations

import gc
import sys
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


def test_threads_waiting_for_the_gil_get_it_sooner() -> None:
    before = sys.getswitchinterval()
    try:
        server.tune_threads()
        assert sys.getswitchinterval() == pytest.approx(server.SWITCH_INTERVAL)
        assert server.SWITCH_INTERVAL < 0.005  # Python's default
    finally:
        sys.setswitchinterval(before)
