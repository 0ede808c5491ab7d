"""A serving process tunes the runtime once it has started (hookd.server.tune_runtime)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from hookd import server


@pytest.fixture
def restored_runtime() -> Iterator[None]:
    thresholds = gc.get_threshold()
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restored_runtime")
def test_long_lived_objects_leave_the_collectors_view_and_collections_come_less_often() -> None:
    held = [object() for _ in range(10)]  # noqa: F841 - alive across the freeze
    gc.unfreeze()
    frozen_before = gc.get_freeze_count()
    server.tune_runtime()
    assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == server.GC_THRESHOLDS
    assert server.GC_THRESHOLDS[0] > 700  # Python's default gen-0 threshold


@pytest.mark.usefixtures("restored_runtime")
def test_threads_take_turns_more_often_than_by_default() -> None:
    sys.setswitchinterval(0.005)  # Python's default
    server.tune_runtime()
    assert sys.getswitchinterval() == pytest.approx(server.SWITCH_INTERVAL)
    assert server.SWITCH_INTERVAL < 0.005
