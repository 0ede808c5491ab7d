"""The API's routers, one per resource."""

from __future__ import annotations

from hookd.api.routes import (
    dead_letters,
    deliveries,
    endpoints,
    event_types,
    events,
    health,
    keys,
)
from hookd.api.routes import stats as stats_routes

ROUTERS = (
    endpoints.router,
    events.router,
    deliveries.router,
    dead_letters.router,
    event_types.router,
    keys.router,
    stats_routes.router,
    health.router,
)

__all__ = ["ROUTERS"]
