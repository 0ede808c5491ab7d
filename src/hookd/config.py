"""Settings: one typed object, read from the environment only at the edge (`Settings.from_env`).

Every setting has an environment variable (`HOOKD_…`); the README's Configuration section
lists them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookd import crypto
from hookd.domain import errors
from hookd.domain.models import Secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

KEY_FILE_NAME = "hookd.key"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 512  # requests in flight at once, over all endpoints
    batch_size: int = 256  # deliveries taken per claim
    poll_interval: float = 0.5  # seconds between polls when idle (a publish wakes it sooner)
    lease_seconds: float = 0.0  # 0: derived as max endpoint timeout + 30 s
    record_batch: int = 512  # attempts written per transaction at most
    record_interval: float = 0.005  # seconds an attempt may wait to share a transaction
    shutdown_grace: float = 10.0  # seconds in-flight requests get to finish on SIGTERM


@dataclass(frozen=True, slots=True)
class Settings:
    db_path: Path = Path("hookd.db")
    data_dir: Path | None = None  # None: the directory holding the database file
    secret_key: Secret | None = None  # None: read or create <data_dir>/hookd.key
    api_key: Secret | None = None  # an admin key to accept, for automation
    host: str = "127.0.0.1"
    port: int = 8000
    allow_private_networks: tuple[IPNetwork, ...] = ()
    default_timeout: float = 15.0
    max_timeout: float = 60.0
    max_payload_bytes: int = 256 * 1024
    response_excerpt_bytes: int = 4096
    retry_after_max: float = 86400.0
    sqlite_synchronous: str = "FULL"
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @property
    def lease_seconds(self) -> float:
        return self.worker.lease_seconds or self.max_timeout + 30.0

    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.db_path.resolve().parent

    def load_secret_box(self) -> crypto.SecretBox:
        """The encryption key: from the settings, else from the data directory (made if absent)."""
        if self.secret_key is not None:
            return crypto.SecretBox(self.secret_key.reveal())
        path = self.resolved_data_dir() / KEY_FILE_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(crypto.generate_key() + "\n")
        return crypto.SecretBox(path.read_text().strip())

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        worker: dict[str, Any] = {}
        if "HOOKD_DB" in env:
            values["db_path"] = Path(env["HOOKD_DB"])
        if "HOOKD_DATA_DIR" in env:
            values["data_dir"] = Path(env["HOOKD_DATA_DIR"])
        if env.get("HOOKD_SECRET_KEY"):
            values["secret_key"] = Secret(env["HOOKD_SECRET_KEY"])
        if env.get("HOOKD_API_KEY"):
            values["api_key"] = Secret(env["HOOKD_API_KEY"])
        if "HOOKD_HOST" in env:
            values["host"] = env["HOOKD_HOST"]
        if "HOOKD_ALLOW_PRIVATE_NETWORKS" in env:
            values["allow_private_networks"] = parse_networks(env["HOOKD_ALLOW_PRIVATE_NETWORKS"])
        if "HOOKD_SQLITE_SYNCHRONOUS" in env:
            values["sqlite_synchronous"] = env["HOOKD_SQLITE_SYNCHRONOUS"]
        numbers: dict[str, tuple[str, type]] = {
            "HOOKD_PORT": ("port", int),
            "HOOKD_DEFAULT_TIMEOUT": ("default_timeout", float),
            "HOOKD_MAX_TIMEOUT": ("max_timeout", float),
            "HOOKD_MAX_PAYLOAD_BYTES": ("max_payload_bytes", int),
            "HOOKD_RETRY_AFTER_MAX": ("retry_after_max", float),
        }
        worker_numbers: dict[str, tuple[str, type]] = {
            "HOOKD_WORKER_CONCURRENCY": ("concurrency", int),
            "HOOKD_WORKER_BATCH_SIZE": ("batch_size", int),
            "HOOKD_WORKER_POLL_INTERVAL": ("poll_interval", float),
            "HOOKD_LEASE_SECONDS": ("lease_seconds", float),
            "HOOKD_SHUTDOWN_GRACE": ("shutdown_grace", float),
        }
        for target, table in ((values, numbers), (worker, worker_numbers)):
            for var, (name, kind) in table.items():
                if var in env:
                    target[name] = _number(var, env[var], kind)
        if worker:
            values["worker"] = WorkerSettings(**worker)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = [
            (0 < self.port < 65536, "HOOKD_PORT must be 1..65535"),
            (0 < self.default_timeout <= self.max_timeout, "default timeout must be in (0, max]"),
            (self.max_timeout <= 600, "HOOKD_MAX_TIMEOUT must be at most 600 seconds"),
            (self.max_payload_bytes > 0, "HOOKD_MAX_PAYLOAD_BYTES must be positive"),
            (self.worker.concurrency > 0, "HOOKD_WORKER_CONCURRENCY must be positive"),
            (self.worker.batch_size > 0, "HOOKD_WORKER_BATCH_SIZE must be positive"),
            (self.worker.poll_interval > 0, "HOOKD_WORKER_POLL_INTERVAL must be positive"),
            (
                self.worker.lease_seconds == 0 or self.worker.lease_seconds > self.max_timeout,
                "HOOKD_LEASE_SECONDS must exceed HOOKD_MAX_TIMEOUT",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise errors.ConfigError(message)


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """`127.0.0.0/8, ::1` → networks. A bare address means that one address."""
    networks = []
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise errors.ConfigError(
                f"HOOKD_ALLOW_PRIVATE_NETWORKS: {part!r} is not a network (e.g. 127.0.0.0/8, ::1)"
            ) from None
    return tuple(networks)


def _number(var: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise errors.ConfigError(f"{var} must be a number, not {raw!r}") from None
