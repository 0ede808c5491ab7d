"""HOOKD_API_PROCESSES / --api-processes: bad input is a clear configuration or usage error
(exit status 2), never a traceback; and the pieces of the API processes' protocol that need no
process (the owner link's answers, the shared event-type stamp)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from hookd.api.processes import OwnerLink
from hookd.cli import app
from hookd.config import MAX_API_PROCESSES, Settings
from hookd.domain import errors
from hookd.metrics import DeliveryCounters
from hookd.store.sqlite.store import SharedStamp


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_API_PROCESSES + 1)])
def test_api_processes_out_of_range_is_a_config_error(value: str, tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match=r"HOOKD_API_PROCESSES must be 1\.\.64"):
        Settings.from_env({"HOOKD_API_PROCESSES": value}, db_path=tmp_path / "h.db")


def test_api_processes_not_a_number_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="HOOKD_API_PROCESSES must be a number"):
        Settings.from_env({"HOOKD_API_PROCESSES": "two"}, db_path=tmp_path / "h.db")


@pytest.mark.parametrize("value", ["1", "2", str(MAX_API_PROCESSES)])
def test_api_processes_in_range(value: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"HOOKD_API_PROCESSES": value}, db_path=tmp_path / "h.db")
    assert settings.api_processes == int(value)


def test_api_processes_default_to_one(tmp_path: Path) -> None:
    assert Settings.from_env({}, db_path=tmp_path / "h.db").api_processes == 1


@pytest.mark.parametrize("command", ["serve", "api"])
@pytest.mark.parametrize("value", ["0", "65", "1000000", "many"])
def test_cli_refuses_api_processes_out_of_range(
    command: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HOOKD_API_PROCESSES", raising=False)
    db = tmp_path / "hookd.db"
    outcome = CliRunner().invoke(app, [command, "--db", str(db), "--api-processes", value])
    assert outcome.exit_code == 2, outcome.output
    assert "--api-processes" in outcome.output
    assert "Invalid value" in outcome.output
    assert not db.exists()  # refused before anything was opened


@pytest.mark.parametrize("value", ["0", "65", "x"])
def test_the_real_command_refuses_a_bad_environment_value_without_a_traceback(
    value: str, tmp_path: Path
) -> None:
    env = {**os.environ, "HOOKD_CONFIG_DIR": str(tmp_path / "config"), "HOOKD_API_PROCESSES": value}
    db = tmp_path / "hookd.db"
    done = subprocess.run(
        [sys.executable, "-m", "hookd", "serve", "--db", str(db), "--port", "1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 2, output
    assert "HOOKD_API_PROCESSES" in output
    assert "Traceback" not in output
    assert not db.exists()


def test_the_shared_stamp_changes_for_every_process_that_maps_it(tmp_path: Path) -> None:
    path = tmp_path / "hookd.db.types"
    one, two = SharedStamp(path), SharedStamp(path)
    try:
        seen = two.read()
        one.touch()
        assert two.read() != seen
        assert path.stat().st_size == SharedStamp.SIZE
    finally:
        one.close()
        two.close()


async def test_the_owner_link_answers_a_flush_and_sends_counts_with_a_question() -> None:
    out = io.BytesIO()
    counters = DeliveryCounters()
    link = OwnerLink(out, counters, wake=True)
    counters.event_published(3)
    link.on_line({"flush": 7})
    counters.event_published(2)
    asking = asyncio.create_task(link.ask("metrics"))
    await asyncio.sleep(0)
    link.notify()
    link.notify()  # once per loop iteration
    await asyncio.sleep(0)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["flushed"] == 7 and lines[0]["counts"]["published"] == 3
    assert lines[1]["ask"] == 1 and lines[1]["what"] == "metrics"
    assert lines[1]["counts"]["published"] == 2
    assert lines[2:] == [{"wake": 1}]
    link.on_line({"answer": 1, "text": "hookd_events_published_total 5.0\n"})
    assert (await asking)["text"].startswith("hookd_events_published_total 5")


async def test_an_unanswered_question_is_a_503_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hookd.api.processes.ASK_TIMEOUT", 0.05)
    link = OwnerLink(io.BytesIO(), DeliveryCounters(), wake=False)
    with pytest.raises(errors.StoreUnavailable, match="does not answer"):
        await link.ask("metrics")
    assert await link.not_ready_reason() == "the owner process does not answer"
    asking = asyncio.create_task(link.ask("ready"))
    await asyncio.sleep(0)
    link.close()  # stdin's end: the owner is gone
    with pytest.raises(errors.StoreUnavailable, match="gone"):
        await asking
