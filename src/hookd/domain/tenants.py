"""Tenant ids: the owners of every resource (see DESIGN §1).

A tenant is not a stored record: it exists as soon as a resource or an API key names it. Its id
is 1..63 characters of lowercase letters, digits, ``_`` and ``-``, starting with a letter or a
digit (so it is safe in URLs, logs and file names, and reads the same everywhere).
"""

from __future__ import annotations

import re

from hookd.domain import errors

MAX_LENGTH = 63
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def validate_tenant_id(value: str, *, path: str = "tenant_id") -> str:
    """Return `value` if it is a valid tenant id; raise `errors.ValidationError` if not."""
    if not isinstance(value, str) or not _TENANT_ID.fullmatch(value):
        message = (
            f"must be 1..{MAX_LENGTH} characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or a digit"
        )
        raise errors.ValidationError("invalid tenant id", [errors.Problem(path, message)])
    return value
