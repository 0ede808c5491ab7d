"""An API over a real engine for integration tests: an admin key, a tenant key, httpx clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from hookd.api import create_app
from hookd.engine import Engine

PROBLEM = "application/problem+json"
TENANT = "acme"


@dataclass
class Api:
    engine: Engine
    app: FastAPI
    admin_key: str
    tenant_key: str

    def client(
        self, key: str | None = None, *, ip: str = "127.0.0.1", admin: bool = True
    ) -> httpx.AsyncClient:
        """A client with `key` (default: the admin key; `admin=False` sends none)."""
        key = key if key is not None else (self.admin_key if admin else None)
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


@asynccontextmanager
async def api_over(engine: Engine) -> AsyncIterator[Api]:
    """An app over an open engine, with a generated admin key and a key of tenant `acme`."""
    _, admin = await engine.create_api_key(None, name="admin")
    _, tenant = await engine.create_api_key(TENANT, name="acme")
    yield Api(engine, create_app(engine, manage_engine=False), admin, tenant)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Await `check()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s")
        await asyncio.sleep(0.05)
