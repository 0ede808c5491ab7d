"""hookd's HTTP API (FastAPI): `create_app(engine)` gives the ASGI application."""

from __future__ import annotations

from hookd.api.app import create_app

__all__ = ["create_app"]
