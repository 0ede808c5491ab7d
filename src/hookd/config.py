"""Settings: one typed object, read from the environment only at the edge (`Settings.from_env`).

Every setting has an environment variable (`HOOKD_…`); the README's Configuration section
lists them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
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
#: The HTTP clients deliveries can go out with (`HOOKD_HTTP_CLIENT`).
HTTP_CLIENTS = ("native", "aiohttp")
#: The most delivery worker processes one `hookd serve` or `hookd worker` runs.
MAX_WORKER_PROCESSES = 64
#: The most API processes one `hookd serve` or `hookd api` runs.
MAX_API_PROCESSES = 64


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 512  # requests in flight at once, over all endpoints
    batch_size: int = 256  # deliveries taken per claim
    poll_interval: float = 0.5  # seconds between polls when idle (a publish wakes it sooner)
    lease_seconds: float = 0.0  # 0: derived as max endpoint timeout + 30 s
    record_batch: int = 512  # attempts written per transaction at most
    record_interval: float = 0.005  # seconds an attempt may wait to share a transaction
    shutdown_grace: float = 10.0  # seconds in-flight requests get to finish on SIGTERM
    #: requests in flight to one endpoint at once (per process), unless the endpoint sets its own
    endpoint_max_in_flight: int = 32
    #: the HTTP client deliveries go out with: "native" (hookd.delivery.http1, the fast one) or
    #: "aiohttp" (hookd.delivery.sender)
    http_client: str = "native"
    #: delivery worker processes of `hookd serve` / `hookd worker`: this process, and
    #: `processes - 1` more that it starts, watches and stops (hookd.delivery.processes)
    processes: int = 1


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `burst` requests at once, refilled at `per_second` requests a second.

    Written `COUNT/UNIT[:BURST]` (`parse_rate_limit`): `100/s:200` is 100 a second with bursts
    of 200; `5/m` is 5 a minute with bursts of 5 (the burst defaults to the count).
    """

    per_second: float
    burst: int

    def __str__(self) -> str:
        return f"{self.per_second:g}/s:{self.burst}"


_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(value: str, *, name: str = "rate limit") -> RateLimit | None:
    """`100/s:200`, `5/m`, `1000/h:50` → a `RateLimit`; `off` (or `0`) → None (no limit)."""
    text = value.strip().lower()
    if text in ("off", "0", "none", ""):
        return None
    count, _, rest = text.partition("/")
    unit, _, burst = rest.partition(":")
    try:
        amount = float(count)
        size = int(burst) if burst else math.ceil(amount)
        seconds = _RATE_UNITS[unit]
    except (ValueError, KeyError, OverflowError):
        raise errors.ConfigError(
            f"{name}: {value!r} is not a rate limit; write COUNT/UNIT[:BURST] with unit s, m "
            "or h (e.g. 100/s:200, 5/m), or `off`"
        ) from None
    if not (amount > 0 and math.isfinite(amount) and size >= 1):
        raise errors.ConfigError(f"{name}: the count and the burst must be positive")
    return RateLimit(per_second=amount / seconds, burst=size)


@dataclass(frozen=True, slots=True)
class Settings:
    db_path: Path = Path("hookd.db")
    data_dir: Path | None = None  # None: the directory holding the database file
    secret_key: Secret | None = None  # None: read or create <data_dir>/hookd.key
    api_key: Secret | None = None  # an admin key to accept, for automation
    host: str = "127.0.0.1"
    port: int = 8000
    #: API processes of `hookd serve` / `hookd api`: this process, and `api_processes - 1` more
    #: that it starts, watches and stops, serving the same port (hookd.api.processes)
    api_processes: int = 1
    allow_private_networks: tuple[IPNetwork, ...] = ()
    default_timeout: float = 15.0
    max_timeout: float = 60.0
    max_payload_bytes: int = 256 * 1024
    response_excerpt_bytes: int = 4096
    retry_after_max: float = 86400.0
    #: seconds an endpoint may fail without any success before it is disabled (per endpoint:
    #: `disable_after`)
    disable_after: float = 5 * 86400.0
    sqlite_synchronous: str = "FULL"
    # PostgreSQL (None: SQLite at db_path). The URL may hold a password: kept out of repr.
    database_url: str | None = field(default=None, repr=False)
    database_schema: str | None = None  # None: the server's search_path (usually public)
    database_pool_size: int = 10  # connections per process at most (plus one for LISTEN)
    database_pool_min: int = 1  # connections kept open when idle
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    # publishing: how long an idempotency key is remembered, unknown types, batch body size
    idempotency_ttl: float = 86400.0
    allow_unknown_event_types: bool = True
    max_batch_bytes: int = 16 * 1024 * 1024
    # API rate limits (None: off); per process, see hookd.api.ratelimit
    rate_limit_per_key: RateLimit | None = RateLimit(per_second=500.0, burst=1000)
    rate_limit_per_ip: RateLimit | None = RateLimit(per_second=1000.0, burst=2000)
    rate_limit_test_send: RateLimit | None = RateLimit(per_second=5 / 60, burst=5)
    rate_limit_max_tracked: int = 10_000  # keys, IPs or endpoints tracked per limit (LRU)
    metrics_public: bool = False  # True: /metrics answers without a key
    metrics_endpoint_cap: int = 100  # endpoints with their own series; the rest are "other"

    @property
    def lease_seconds(self) -> float:
        return self.worker.lease_seconds or self.max_timeout + 30.0

    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.db_path.resolve().parent

    def database_label(self) -> str:
        """Which database this is, safe to print (a PostgreSQL URL without its password)."""
        if self.database_url is None:
            return str(self.db_path.resolve())
        from hookd.store.postgres.store import redact_url  # here: only PostgreSQL needs it

        schema = f" (schema {self.database_schema})" if self.database_schema else ""
        return redact_url(self.database_url) + schema

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
        if env.get("HOOKD_DATABASE_URL"):
            values["database_url"] = env["HOOKD_DATABASE_URL"]
        if env.get("HOOKD_DATABASE_SCHEMA"):
            values["database_schema"] = env["HOOKD_DATABASE_SCHEMA"]
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
        rate_limits = {
            "HOOKD_RATE_LIMIT_PER_KEY": "rate_limit_per_key",
            "HOOKD_RATE_LIMIT_PER_IP": "rate_limit_per_ip",
            "HOOKD_RATE_LIMIT_TEST_SEND": "rate_limit_test_send",
        }
        for var, name in rate_limits.items():
            if var in env:
                values[name] = parse_rate_limit(env[var], name=var)
        if "HOOKD_ALLOW_UNKNOWN_EVENT_TYPES" in env:
            values["allow_unknown_event_types"] = _flag(
                "HOOKD_ALLOW_UNKNOWN_EVENT_TYPES", env["HOOKD_ALLOW_UNKNOWN_EVENT_TYPES"]
            )
        if "HOOKD_METRICS_PUBLIC" in env:
            values["metrics_public"] = _flag("HOOKD_METRICS_PUBLIC", env["HOOKD_METRICS_PUBLIC"])
        numbers: dict[str, tuple[str, type]] = {
            "HOOKD_PORT": ("port", int),
            "HOOKD_API_PROCESSES": ("api_processes", int),
            "HOOKD_DEFAULT_TIMEOUT": ("default_timeout", float),
            "HOOKD_MAX_TIMEOUT": ("max_timeout", float),
            "HOOKD_MAX_PAYLOAD_BYTES": ("max_payload_bytes", int),
            "HOOKD_RETRY_AFTER_MAX": ("retry_after_max", float),
            "HOOKD_DISABLE_AFTER": ("disable_after", float),
            "HOOKD_DATABASE_POOL_SIZE": ("database_pool_size", int),
            "HOOKD_DATABASE_POOL_MIN": ("database_pool_min", int),
            "HOOKD_IDEMPOTENCY_TTL": ("idempotency_ttl", float),
            "HOOKD_MAX_BATCH_BYTES": ("max_batch_bytes", int),
            "HOOKD_RATE_LIMIT_MAX_TRACKED": ("rate_limit_max_tracked", int),
            "HOOKD_METRICS_ENDPOINT_CAP": ("metrics_endpoint_cap", int),
        }
        worker_numbers: dict[str, tuple[str, type]] = {
            "HOOKD_WORKER_CONCURRENCY": ("concurrency", int),
            "HOOKD_WORKER_BATCH_SIZE": ("batch_size", int),
            "HOOKD_WORKER_POLL_INTERVAL": ("poll_interval", float),
            "HOOKD_LEASE_SECONDS": ("lease_seconds", float),
            "HOOKD_SHUTDOWN_GRACE": ("shutdown_grace", float),
            "HOOKD_ENDPOINT_MAX_IN_FLIGHT": ("endpoint_max_in_flight", int),
            "HOOKD_WORKER_PROCESSES": ("processes", int),
        }
        if "HOOKD_HTTP_CLIENT" in env:
            worker["http_client"] = env["HOOKD_HTTP_CLIENT"].strip().lower()
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
            (self.idempotency_ttl > 0, "HOOKD_IDEMPOTENCY_TTL must be positive (seconds)"),
            (self.disable_after > 0, "HOOKD_DISABLE_AFTER must be positive (seconds)"),
            (self.max_batch_bytes > 0, "HOOKD_MAX_BATCH_BYTES must be positive"),
            (self.worker.concurrency > 0, "HOOKD_WORKER_CONCURRENCY must be positive"),
            (
                self.worker.http_client in HTTP_CLIENTS,
                f"HOOKD_HTTP_CLIENT must be one of {', '.join(HTTP_CLIENTS)}",
            ),
            (
                self.worker.endpoint_max_in_flight > 0,
                "HOOKD_ENDPOINT_MAX_IN_FLIGHT must be positive",
            ),
            (self.worker.batch_size > 0, "HOOKD_WORKER_BATCH_SIZE must be positive"),
            (
                1 <= self.worker.processes <= MAX_WORKER_PROCESSES,
                f"HOOKD_WORKER_PROCESSES must be 1..{MAX_WORKER_PROCESSES}",
            ),
            (
                1 <= self.api_processes <= MAX_API_PROCESSES,
                f"HOOKD_API_PROCESSES must be 1..{MAX_API_PROCESSES}",
            ),
            (self.worker.poll_interval > 0, "HOOKD_WORKER_POLL_INTERVAL must be positive"),
            (
                self.worker.lease_seconds == 0 or self.worker.lease_seconds > self.max_timeout,
                "HOOKD_LEASE_SECONDS must exceed HOOKD_MAX_TIMEOUT",
            ),
            (self.rate_limit_max_tracked > 0, "HOOKD_RATE_LIMIT_MAX_TRACKED must be positive"),
            (self.metrics_endpoint_cap >= 0, "HOOKD_METRICS_ENDPOINT_CAP must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise errors.ConfigError(message)
        self._validate_database()

    def _validate_database(self) -> None:
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise errors.ConfigError(
                "HOOKD_DATABASE_URL must be a PostgreSQL URL (postgresql://user@host:5432/db); "
                "leave it unset for SQLite (HOOKD_DB)"
            )
        if self.database_schema is not None:
            from hookd.store.postgres.store import check_schema_name

            check_schema_name(self.database_schema)
        if not 1 <= self.database_pool_min <= self.database_pool_size:
            raise errors.ConfigError(
                "HOOKD_DATABASE_POOL_SIZE must be positive and at least HOOKD_DATABASE_POOL_MIN"
            )


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


def _flag(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise errors.ConfigError(f"{var} must be true or false, not {raw!r}")


def _number(var: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise errors.ConfigError(f"{var} must be a number, not {raw!r}") from None
