"""Worker processes' counts: `DeliveryCounters.take` in a worker process, `merge` in the process
serving /metrics (they travel as JSON); and the HOOKD_WORKER_PROCESSES / --worker-processes
bounds."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from hookd import metrics
from hookd.cli import app
from hookd.config import MAX_WORKER_PROCESSES, Settings
from hookd.domain import errors, ids
from hookd.domain.models import Attempt, AttemptResult
from hookd.domain.models import DeliveryStatus as D
from hookd.policy.admission import BreakerChange
from hookd.policy.breaker import BreakerState, Transition


def result(endpoint_id: str, status: D, ms: float) -> AttemptResult:
    attempt = Attempt(
        id=ids.new_id(ids.ATTEMPT),
        delivery_id="dlv_1",
        endpoint_id=endpoint_id,
        number=1,
        started_at=0.0,
        duration_ms=ms,
        outcome="success",
    )
    return AttemptResult(attempt, status, None)


def change(endpoint_id: str, to: BreakerState) -> BreakerChange:
    return BreakerChange(endpoint_id, Transition(0.0, BreakerState.CLOSED, to, "test"))


def snapshot(counters: metrics.DeliveryCounters) -> dict[str, Any]:
    """Everything a scrape shows of `counters`."""
    return {
        "published": counters.published,
        "rows": sorted(counters.by_endpoint()),
        "totals": counters.totals(),
        "latency": counters.latency(),
        "transitions": dict(counters.breaker_transitions),
    }


def busy_helper() -> metrics.DeliveryCounters:
    helper = metrics.DeliveryCounters()
    helper.event_published(2)
    for endpoint, status, ms in [
        ("ep_a", D.DELIVERED, 1.0),
        ("ep_a", D.DELIVERED, 7.0),
        ("ep_a", D.PENDING, 300.0),
        ("ep_b", D.DEAD, 2_000.0),
        ("ep_b", D.PARKED, 120_000.0),
    ]:
        helper.attempt_finished(result(endpoint, status, ms))
    helper.breaker_changed(change("ep_b", BreakerState.OPEN))
    helper.breaker_changed(change("ep_b", BreakerState.HALF_OPEN))
    helper.breaker_changed(change("ep_b", BreakerState.OPEN))
    return helper


def test_take_then_merge_adds_everything_over_json() -> None:
    helper = busy_helper()
    counts = helper.take()
    assert counts is not None
    owner = metrics.DeliveryCounters()
    owner.attempt_finished(result("ep_a", D.DELIVERED, 3.0))
    owner.event_published()
    attempts = owner.merge(orjson.loads(orjson.dumps(counts)))  # as the pipe carries it
    assert attempts == 5
    assert owner.published == 3
    rows = {(e, o): n for e, o, n in owner.by_endpoint() if n}
    assert rows == {
        ("ep_a", "delivered"): 3,
        ("ep_a", "retry"): 1,
        ("ep_b", "dead"): 1,
        ("ep_b", "parked"): 1,
    }
    assert owner.totals() == {"delivered": 3, "retry": 1, "failed": 0, "dead": 1, "parked": 1}
    buckets, total = owner.latency()
    cumulative = dict(buckets)
    assert cumulative[0.005] == 2  # 1 ms (helper) and 3 ms (owner)
    assert cumulative[0.01] == 3
    assert cumulative[0.5] == 4
    assert cumulative[2.5] == 5
    assert cumulative[60.0] == 5
    assert cumulative[math.inf] == 6
    assert total == pytest.approx(0.003 + 0.001 + 0.007 + 0.3 + 2.0 + 120.0)
    assert owner.breaker_transitions == {"open": 2, "half_open": 1, "closed": 0}


def test_take_starts_again_from_zero() -> None:
    helper = busy_helper()
    assert helper.take() is not None
    assert helper.take() is None  # nothing happened since
    assert helper.totals() == dict.fromkeys(metrics.OUTCOMES, 0)
    assert helper.published == 0
    assert helper.latency()[1] == 0.0
    assert set(helper.breaker_transitions.values()) == {0}
    helper.attempt_finished(result("ep_c", D.FAILED, 1.0))
    again = helper.take()
    assert again is not None
    assert again["rows"] == {"ep_c": [0, 0, 1, 0, 0]}
    assert again["published"] == 0


def test_take_is_none_when_nothing_happened() -> None:
    assert metrics.DeliveryCounters().take() is None


@pytest.mark.parametrize(
    "only",
    [
        lambda c: c.event_published(),
        lambda c: c.attempt_finished(result("ep_a", D.DELIVERED, 1.0)),
        lambda c: c.breaker_changed(change("ep_a", BreakerState.OPEN)),
    ],
    ids=["published", "attempt", "breaker"],
)
def test_take_reports_any_one_kind_of_count(only: Any) -> None:
    helper = metrics.DeliveryCounters()
    only(helper)
    counts = helper.take()
    assert counts is not None
    owner = metrics.DeliveryCounters()
    owner.merge(counts)
    only(expected := metrics.DeliveryCounters())
    assert snapshot(owner) == snapshot(expected)


def test_merge_folds_endpoints_past_the_cap_into_other() -> None:
    owner = metrics.DeliveryCounters(endpoint_cap=2)
    owner.attempt_finished(result("ep_a", D.DELIVERED, 1.0))
    helper = metrics.DeliveryCounters(endpoint_cap=2)
    for endpoint in ("ep_b", "ep_c", "ep_d"):  # ep_d is past the helper's own cap
        helper.attempt_finished(result(endpoint, D.DELIVERED, 1.0))
    counts = helper.take()
    assert counts is not None
    assert counts["rows"][metrics.OTHER] == [1, 0, 0, 0, 0]
    assert owner.merge(counts) == 3
    rows = {(e, o): n for e, o, n in owner.by_endpoint() if n}
    # ep_b takes the owner's last row; ep_c and the helper's "other" (ep_d) share "other"
    assert rows == {
        ("ep_a", "delivered"): 1,
        ("ep_b", "delivered"): 1,
        (metrics.OTHER, "delivered"): 2,
    }
    # an endpoint the owner already has a row for keeps it, past the cap or not
    again = metrics.DeliveryCounters()
    again.attempt_finished(result("ep_a", D.PENDING, 1.0))
    counts = again.take()
    assert counts is not None
    owner.merge(counts)
    assert ("ep_a", "retry", 1) in set(owner.by_endpoint())


def valid() -> dict[str, Any]:
    counts = busy_helper().take()
    assert counts is not None
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(counts))
    return decoded


def broken(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    counts = copy.deepcopy(valid())
    target: Any = counts
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return counts


@pytest.mark.parametrize(
    "counts",
    [
        broken(("rows", "ep_b"), [1, 2, 3]),  # too short
        broken(("rows", "ep_b"), [0, 0, 0, 0, -1]),  # negative
        broken(("rows", "ep_b"), ["x", 0, 0, 0, 0]),
        broken(("rows",), [1, 2]),
        broken(("buckets",), [1] * 3),
        broken(("buckets",), None),
        broken(("latency_sum",), "soon"),
        broken(("published",), "many"),
        broken(("breaker_transitions",), {"exploded": 1}),
        broken(("breaker_transitions", "open"), "x"),
        {"rows": {}},  # fields missing
    ],
)
def test_malformed_counts_add_nothing(counts: dict[str, Any]) -> None:
    owner = metrics.DeliveryCounters()
    owner.attempt_finished(result("ep_a", D.DELIVERED, 1.0))
    owner.event_published()
    before = snapshot(owner)
    with pytest.raises((ValueError, TypeError, KeyError)):
        owner.merge(counts)
    assert snapshot(owner) == before


def test_a_malformed_row_after_good_ones_adds_nothing() -> None:
    counts = valid()
    counts["rows"] = {"ep_a": [5, 0, 0, 0, 0], "ep_z": [1, 1]}  # the bad one last
    owner = metrics.DeliveryCounters()
    before = snapshot(owner)
    with pytest.raises(ValueError, match="expected 5 counts"):
        owner.merge(counts)
    assert snapshot(owner) == before


# HOOKD_WORKER_PROCESSES / --worker-processes ---------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-1", str(MAX_WORKER_PROCESSES + 1)])
def test_worker_processes_out_of_range_is_a_config_error(value: str, tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="HOOKD_WORKER_PROCESSES"):
        Settings.from_env({"HOOKD_WORKER_PROCESSES": value}, db_path=tmp_path / "h.db")


@pytest.mark.parametrize("value", ["1", "3", str(MAX_WORKER_PROCESSES)])
def test_worker_processes_in_range(value: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"HOOKD_WORKER_PROCESSES": value}, db_path=tmp_path / "h.db")
    assert settings.worker.processes == int(value)


def test_worker_processes_default_to_one(tmp_path: Path) -> None:
    assert Settings.from_env({}, db_path=tmp_path / "h.db").worker.processes == 1


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_cli_refuses_worker_processes_out_of_range(
    command: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HOOKD_WORKER_PROCESSES", raising=False)
    db = tmp_path / "hookd.db"
    outcome = CliRunner().invoke(app, [command, "--db", str(db), "--worker-processes", value])
    assert outcome.exit_code == 2, outcome.output
    assert "--worker-processes" in outcome.output
    assert "Invalid value" in outcome.output
    assert not db.exists()  # refused before anything was opened


def test_cli_reads_worker_processes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HOOKD_WORKER_PROCESSES", "0")
    db = tmp_path / "hookd.db"
    outcome = CliRunner().invoke(app, ["serve", "--db", str(db)])
    assert outcome.exit_code == 2, outcome.output
    assert "HOOKD_WORKER_PROCESSES" in outcome.output or "--worker-processes" in outcome.output
    assert not db.exists()
