"""`codec.rfc3339`: the wire body's timestamp, exactly what datetime gives."""

from __future__ import annotations

import datetime
import random

import pytest

from hookd.store import codec


def reference(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize(
    "ts",
    [
        0.0,
        0.0005,
        0.9994999,
        0.9999994,  # rounds down to .999999
        0.9999995,  # rounds up to the next second (half to even, as datetime does)
        1.0000005,
        1_700_000_000.123,
        1_700_000_000.9999996,
        253_402_300_799.999,  # 9999-12-31T23:59:59.999Z, the last one an event may have
    ],
)
def test_edges_match_datetime(ts: float) -> None:
    assert codec.rfc3339(ts) == reference(ts)


def test_random_times_match_datetime_in_any_order() -> None:
    rng = random.Random(6)
    times = [rng.uniform(0, 253_402_300_799) for _ in range(20_000)]
    times += [rng.randrange(0, 2**34) + rng.choice([0.9999995, 5e-7, 0.9995]) for _ in range(5000)]
    # the same second again and again, then another (the kept second must follow)
    times += [1_700_000_000 + i / 7 for i in range(50)] * 2
    for ts in times:
        assert codec.rfc3339(ts) == reference(ts), ts
