"""The API's routers, one per resource."""

from __future__ import annotations

from hookd.api.routes import dead_letters, deliveries, endpoints, events, health

ROUTERS = (
    endpoints.router,
    events.router,
    deliveries.router,
    dead_letters.router,
    health.router,
)

__all__ = ["ROUTERS"]
