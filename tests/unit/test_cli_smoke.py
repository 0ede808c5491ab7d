"""Smoke test: a real ``python -m hookd serve`` in a subprocess, driven by the CLI.

It checks the pieces join up: the server saves its admin key where the CLI finds it, the CLI's
requests match the API, a delivery reaches a local receiver, and SIGTERM stops the server
gracefully with status 0.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from hookd import credentials
from hookd.cli import app

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A local webhook receiver answering 204; yields its URL and the bodies it got."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()
    thread.join()


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"hookd exited with {process.returncode}: {err.decode()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.communicate()
    pytest.fail("hookd did not become healthy in time")


def stop(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("hookd did not stop within 15 s of SIGTERM")
    return process.returncode, out.decode(), err.decode()


def hookd(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("HOOKD_API_KEY", "HOOKD_URL", "HOOKD_SECRET_KEY", "HOOKD_HOST", "HOOKD_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "config"))  # for the CLI in-process
    monkeypatch.setenv("COLUMNS", "200")
    environ = dict(os.environ)
    environ.update(
        PYTHONPATH=os.pathsep.join([str(SRC), environ.get("PYTHONPATH", "")]),
        HOOKD_DB=str(tmp_path / "data" / "hookd.db"),
        HOOKD_ALLOW_PRIVATE_NETWORKS="127.0.0.0/8",
        HOOKD_SHUTDOWN_GRACE="2",
    )
    return environ


def test_serve_end_to_end_through_the_cli(
    env: dict[str, str], tmp_path: Path, receiver: tuple[str, list[bytes]]
) -> None:
    receiver_url, bodies = receiver
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(["-m", "hookd", "serve", "--port", str(port)], env)
    try:
        wait_until_healthy(url, server)
        assert credentials.load(url) is not None  # saved by the server for the CLI

        added = hookd("endpoints", "add", receiver_url, "--events", "order.*", "--url", url)
        assert added.exit_code == 0, added.output
        assert "whsec_" in added.stdout

        sent = hookd("send", "order.filled", "--data", '{"qty": 3}', "--url", url)
        assert sent.exit_code == 0, sent.output
        assert "to 1 endpoint" in sent.stdout

        listed = hookd("endpoints", "list", "--url", url)
        assert listed.exit_code == 0, listed.output
        assert receiver_url in listed.stdout

        deadline = time.monotonic() + 10
        while not bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [orjson.loads(b)["data"] for b in bodies] == [{"qty": 3}]

        deliveries = hookd("deliveries", "list", "--json", "--url", url)
        assert deliveries.exit_code == 0, deliveries.output
        (delivery,) = orjson.loads(deliveries.stdout)["data"]
        shown = hookd("deliveries", "show", delivery["id"], "--url", url)
        assert shown.exit_code == 0, shown.output
        assert "attempts" in shown.stdout
    finally:
        code, out, err = stop(server)

    assert code == 0, err
    assert "Admin API key (shown once): hk_" in out
    assert f"listening on {url}" in out
    assert "Traceback" not in err


def test_a_second_server_on_the_same_database_exits_2(env: dict[str, str]) -> None:
    port = free_port()
    first = start(["-m", "hookd", "serve", "--port", str(port)], env)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", first)
        second = subprocess.run(
            [sys.executable, "-m", "hookd", "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
    finally:
        code, _, _ = stop(first)

    assert second.returncode == 2
    assert b"is in use by another hookd process" in second.stderr
    assert b"Traceback" not in second.stderr
    assert code == 0


def test_worker_only_mode_stops_on_sigterm(env: dict[str, str]) -> None:
    script = (
        "from rich.console import Console\n"
        "from hookd.config import Settings\n"
        "from hookd.server import run_server\n"
        "run_server(Settings.from_env(), run_api=False, console=Console())\n"
    )
    worker = start(["-c", script], env)
    assert worker.stdout is not None
    line = worker.stdout.readline().decode()  # printed once the engine is open
    assert "hookd worker" in line

    code, _, err = stop(worker)

    assert code == 0, err
