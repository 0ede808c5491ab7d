"""Fixtures of the integration tier: the HTTP API over a real engine, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hookd.config import Settings
from hookd.engine import Engine
from support.api import Api, api_over


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The API over an engine without a worker, on the test's backend."""
    async with Engine(settings, run_worker=False) as engine, api_over(engine) as api:
        yield api


@pytest.fixture
async def admin(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the admin key."""
    async with api.client() as client:
        yield client


@pytest.fixture
async def acme(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A client with tenant `acme`'s key."""
    async with api.client(api.tenant_key) as client:
        yield client
