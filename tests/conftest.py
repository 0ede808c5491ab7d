"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookd import crypto
from hookd.config import Settings, WorkerSettings, parse_networks
from hookd.domain.models import Secret
from hookd.engine import Engine

LOOPBACK = parse_networks("127.0.0.0/8, ::1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fast settings for tests: loopback allowed, quick polling, a fresh key and database."""
    return Settings(
        db_path=tmp_path / "hookd.db",
        secret_key=Secret(crypto.generate_key()),
        allow_private_networks=LOOPBACK,
        default_timeout=5.0,
        max_timeout=10.0,
        worker=WorkerSettings(poll_interval=0.05, shutdown_grace=2.0),
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running
