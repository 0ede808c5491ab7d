"""The PostgreSQL server the tests run against, and a fresh schema for each test.

The server is `HOOKD_TEST_POSTGRES_URL` (default: the local `test` database). When it cannot be
reached, PostgreSQL tests are skipped with the reason, unless `HOOKD_REQUIRE_POSTGRES=1` (CI
sets it): then they fail, so that a missing server can't pass for a green run.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
T = TypeVar("T")


def url() -> str:
    return os.environ.get("HOOKD_TEST_POSTGRES_URL") or DEFAULT_URL


def required() -> bool:
    return os.environ.get("HOOKD_REQUIRE_POSTGRES") == "1"


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@functools.cache
def unavailable_reason() -> str | None:
    """Why the test server can't be used, or None when it can (checked once per session)."""

    async def probe() -> None:
        conn = await asyncpg.connect(url(), timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        run_sync(probe)
    except Exception as exc:
        return f"no PostgreSQL at {url()} (HOOKD_TEST_POSTGRES_URL): {type(exc).__name__}: {exc}"
    return None


def require_server() -> None:
    """Skip the calling test without a server, or fail it when a server is required."""
    reason = unavailable_reason()
    if reason is not None:
        if required():
            pytest.fail(f"HOOKD_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)


def can_restart_server() -> str | None:
    """Why this process can't restart the local server, or None when it can."""
    if os.geteuid() != 0:
        return "restarting PostgreSQL needs root"
    if shutil.which("pg_ctlcluster") is None:
        return "pg_ctlcluster is not installed"
    return None


@dataclass(frozen=True)
class Schema:
    url: str
    name: str


def new_schema_name(prefix: str = "hookd_test") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def drop_schema(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(url(), timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    run_sync(drop)


def fresh_schema(prefix: str = "hookd_test") -> Iterator[Schema]:
    """A fixture body: a schema name no one uses (the store creates it), dropped afterwards."""
    require_server()
    schema = Schema(url(), new_schema_name(prefix))
    try:
        yield schema
    finally:
        drop_schema(schema.name)


def migrated_env(schema: Schema, api_key: str, **settings: str) -> dict[str, str]:
    """The environment of hookd processes sharing `schema`, which this migrates: the caller's,
    one new encryption key for them all, `api_key` as the admin key, loopback receivers allowed,
    quick polls, no API rate limits, small pools; `settings` (HOOKD_* names) on top."""
    from hookd import crypto

    env = {
        **os.environ,
        "HOOKD_DATABASE_URL": schema.url,
        "HOOKD_DATABASE_SCHEMA": schema.name,
        "HOOKD_SECRET_KEY": crypto.generate_key(),
        "HOOKD_API_KEY": api_key,
        "HOOKD_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
        "HOOKD_WORKER_POLL_INTERVAL": "0.2",
        "HOOKD_RATE_LIMIT_PER_KEY": "off",
        "HOOKD_RATE_LIMIT_PER_IP": "off",
        "HOOKD_DATABASE_POOL_SIZE": "4",
        **settings,
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "hookd", "migrate"], env=env, capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr.decode() + migrate.stdout.decode()
    return env
