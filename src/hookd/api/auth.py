"""Who is calling: `Authorization: Bearer <api key>`, checked by the engine.

A route takes `key: Caller` and scopes its engine calls with `scope(key)` (None for an admin key:
every tenant) and creates in `home_tenant(key)` (`DEFAULT_TENANT` for an admin key).
Where a request may name a tenant (`tenant_id`), `list_scope` and `target_tenant` apply the rule
below: a tenant key naming another tenant gets a 404, whether or not that tenant exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookd.api.deps import EngineDep
from hookd.domain import errors, tenants
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


# Naming a tenant (`tenant_id` in a query or a body). An admin key may name any tenant. A tenant
# key may name its own; naming any other is a 404 "tenant not found", the same answer whether
# or not that tenant has anything, so a tenant key never learns that another tenant exists.
# A malformed id is a 422 for every key (that depends on the text only).
def list_scope(key: ApiKey, requested: str | None) -> str | None:
    """The tenant a list or bulk action covers: for an admin key `requested`, None meaning every
    tenant; for a tenant key its own tenant."""
    if requested is None:
        return key.tenant_id
    return _named(key, requested)


def target_tenant(key: ApiKey, requested: str | None) -> str:
    """The one tenant a request acts in (creating, or addressing a resource by name): for an
    admin key `requested`, else `DEFAULT_TENANT`; for a tenant key its own tenant."""
    if requested is None:
        return home_tenant(key)
    return _named(key, requested)


def _named(key: ApiKey, requested: str) -> str:
    tenants.validate_tenant_id(requested)
    if key.tenant_id is not None and requested != key.tenant_id:
        raise errors.NotFound("tenant", requested)
    return requested


TenantQuery = Annotated[
    str | None,
    Query(
        max_length=63,
        description="Admin keys: the tenant to act in (default: every tenant for lists, "
        "`default` otherwise). Tenant keys may name only their own tenant: any other is a 404.",
    ),
]
