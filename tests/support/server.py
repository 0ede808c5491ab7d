"""Run `hookd serve` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from hookd import crypto

ADMIN_KEY = "hk_e2e_admin_key_0123456789abcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """`python -m hookd serve` on a free port, with its own database, key and config dir."""

    def __init__(
        self, tmp: Path, *, args: tuple[str, ...] = (), new_session: bool = False, **env: str
    ) -> None:
        """`args`: more of `hookd serve`'s options; `new_session`: start it in a session (and
        process group) of its own, which `os.killpg(server.pid, ...)` reaches whole."""
        self.tmp = tmp
        self.args = args
        self.new_session = new_session
        self.port = free_port()
        self.db = tmp / "hookd.db"
        self.env = {
            **os.environ,
            "HOOKD_API_KEY": ADMIN_KEY,
            "HOOKD_SECRET_KEY": crypto.generate_key(),
            "HOOKD_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
            "HOOKD_CONFIG_DIR": str(tmp / "config"),
            "HOOKD_WORKER_POLL_INTERVAL": "0.05",
            # these tests publish in bursts on purpose; rate limits have their own tests
            "HOOKD_RATE_LIMIT_PER_KEY": "off",
            "HOOKD_RATE_LIMIT_PER_IP": "off",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def start(self, timeout: float = 20.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "hookd",
            "serve",
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            *self.args,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=log, start_new_session=self.new_session
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"hookd serve exited early:\n{self.log.read_text()}")
                try:
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"hookd serve did not become ready:\n{self.log.read_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
