"""Who is calling: `Authorization: Bearer <api key>`, checked by the engine.

A route takes `key: Caller` and scopes its engine calls with `scope(key)` (None for an admin key:
every tenant) and creates in `home_tenant(key)` (`DEFAULT_TENANT` for an admin key).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookd.api.deps import EngineDep
from hookd.domain import errors
from hookd.domain.models import DEFAULT_TENANT
from hookd.store.port import ApiKey

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="API key",
    description="An hookd API key: an admin key (every tenant) or a tenant-scoped key.",
)


async def authenticate(
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiKey:
    if credentials is None:
        raise errors.Unauthorized("an API key is required: send Authorization: Bearer <key>")
    return await engine.authenticate(credentials.credentials)


Caller = Annotated[ApiKey, Depends(authenticate)]


def scope(key: ApiKey) -> str | None:
    """The tenant the caller may read and change: None (every tenant) for an admin key."""
    return key.tenant_id


def home_tenant(key: ApiKey) -> str:
    """The tenant new resources go to: the key's own, `DEFAULT_TENANT` for an admin key."""
    return DEFAULT_TENANT if key.tenant_id is None else key.tenant_id
