"""hookd's exception tree. Every error hookd raises on purpose derives from `HookdError`.

HookdError
 ├── ConfigError              a setting is missing or malformed
 ├── ValidationError          input is malformed (carries a list of problems, each path + message)
 │    ├── InvalidPattern      an event-type name or subscription pattern is malformed
 │    ├── InvalidSecret       a signing secret is malformed
 │    └── InvalidURL          an endpoint URL is malformed or its scheme is not http(s)
 ├── NotFound                 the resource does not exist (or belongs to another tenant)
 ├── Conflict                 the request conflicts with the resource's current state
 ├── PayloadTooLarge          a body or payload exceeds its size limit
 ├── Unauthorized             missing or wrong credentials
 ├── Forbidden                the credentials are valid but may not do this (e.g. a tenant key
 │                            asking for an admin key)
 ├── VerificationError        an incoming webhook failed signature or timestamp verification
 ├── DestinationBlocked       the SSRF guard refused a destination address
 ├── StoreError               the storage backend failed (driver error kept as __cause__)
 │    └── StoreUnavailable    the storage backend cannot be reached right now
 └── hookd.client.ApiError    the HTTP API answered with a problem document (CLI side)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HookdError(Exception):
    """Root of every error hookd raises on purpose."""


class ConfigError(HookdError):
    """A setting is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a JSON-pointer-like path) and what."""

    path: str
    message: str


class ValidationError(HookdError):
    """Input is malformed. `problems` lists every violation found, not only the first."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: tuple[Problem, ...] = tuple(problems)


class InvalidPattern(ValidationError):
    """An event-type name or subscription pattern is malformed."""


class InvalidSecret(ValidationError):
    """A signing secret is malformed."""


class InvalidURL(ValidationError):
    """An endpoint URL is malformed or not http(s)."""


class NotFound(HookdError):
    """The resource does not exist, or is not visible to the caller."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class Conflict(HookdError):
    """The request conflicts with the current state of the resource."""


class PayloadTooLarge(HookdError):
    """A body or payload exceeds its size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class Unauthorized(HookdError):
    """Missing or wrong credentials."""


class Forbidden(HookdError):
    """The caller is authenticated but may not do this. Never used where the answer would
    reveal another tenant's resources: those are `NotFound`."""


class VerificationError(HookdError):
    """An incoming webhook failed verification; the message says why (never the secret)."""


class DestinationBlocked(HookdError):
    """The SSRF guard refused to connect to an address."""


class StoreError(HookdError):
    """The storage backend failed. The driver's exception is kept as `__cause__`."""


class StoreUnavailable(StoreError):
    """The storage backend cannot be reached right now."""
