"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hookd import crypto
from hookd.config import Settings, WorkerSettings, parse_networks
from hookd.domain.models import Secret
from hookd.engine import Engine
from support import postgres

LOOPBACK = parse_networks("127.0.0.0/8, ::1")


@pytest.fixture
def postgres_schema() -> Iterator[postgres.Schema]:
    """A fresh schema on the test PostgreSQL server, dropped after the test (skips without a
    server, fails instead when HOOKD_REQUIRE_POSTGRES=1)."""
    yield from postgres.fresh_schema()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database under test: tests that use `settings` or `engine` run on both."""
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    """Fast settings for tests: loopback allowed, quick polling, a fresh key and database."""
    fast = Settings(
        db_path=tmp_path / "hookd.db",
        secret_key=Secret(crypto.generate_key()),
        allow_private_networks=LOOPBACK,
        default_timeout=5.0,
        max_timeout=10.0,
        worker=WorkerSettings(poll_interval=0.05, shutdown_grace=2.0),
    )
    if backend == "postgres":
        schema: postgres.Schema = request.getfixturevalue("postgres_schema")
        return fast.replace(database_url=schema.url, database_schema=schema.name)
    return fast


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running
