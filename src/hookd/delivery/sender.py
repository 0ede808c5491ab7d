"""The outbound HTTP seam: one pooled aiohttp session, the SSRF guard pinned into its resolver.

`Sender` is the port the worker calls; `HttpSender` is the real one. Tests use a real local
receiver rather than a fake, but any object with `send` and `close` fits.

Every request: no redirects followed, a total timeout, a bounded read of the response (the rest
is discarded with the connection), no automatic decompression (no zip bombs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hookd import __version__
from hookd.delivery.ssrf import AddressPolicy, literal_address
from hookd.domain import errors
from hookd.domain.models import NO_HEADERS
from hookd.policy.retry import ErrorKind

USER_AGENT = f"hookd/{__version__}"
MAX_RESPONSE_HEADERS = 64
MAX_HEADER_VALUE = 512


class Outcome(NamedTuple):
    """What happened to one request. Exactly one of `status` and `error_kind` is set.
    A NamedTuple, built once per request: see hookd.domain.models."""

    duration_ms: float
    status: int | None = None
    error_kind: ErrorKind | None = None
    error: str | None = None
    response_headers: Mapping[str, str] = NO_HEADERS
    body_excerpt: str | None = None

    @property
    def retry_after(self) -> str | None:
        return self.response_headers.get("retry-after")


class Sender(Protocol):
    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Outcome: ...

    async def close(self) -> None: ...


class BlockedAddress(OSError):
    """Raised by the resolver when every address of a host is refused by the SSRF guard."""


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver and drops addresses the policy refuses."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.is_allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            refused = ", ".join(sorted({r["host"] for r in results}))
            raise BlockedAddress(
                f"{host} resolves only to refused addresses ({refused}); "
                "allow them with HOOKD_ALLOW_PRIVATE_NETWORKS"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class HttpSender:
    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_connections: int = 512,
        excerpt_bytes: int = 4096,
    ) -> None:
        self._policy = policy
        self._max_connections = max_connections
        self._excerpt_bytes = excerpt_bytes
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                resolver=GuardedResolver(self._policy),
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Outcome:
        session = self._ensure_session()
        started = time.perf_counter()
        try:
            host = URL(url).host or ""
            literal = literal_address(host)
            if literal is not None:
                self._policy.check(literal)
            async with session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                excerpt, complete = await self._read_excerpt(response)
                if not complete:
                    response.close()  # don't drain an oversized body; drop the connection
                return Outcome(
                    duration_ms=(time.perf_counter() - started) * 1000,
                    status=response.status,
                    response_headers=_bounded_headers(response.headers),
                    body_excerpt=excerpt,
                )
        except errors.DestinationBlocked as exc:
            return _failure(started, ErrorKind.BLOCKED, str(exc))
        except Exception as exc:  # every transport failure becomes a classified outcome
            kind, message = classify_exception(exc, timeout)
            return _failure(started, kind, message)

    async def _read_excerpt(self, response: aiohttp.ClientResponse) -> tuple[str | None, bool]:
        limit = self._excerpt_bytes
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await response.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        complete = size <= limit and response.content.at_eof()
        if not data:
            return None, complete
        return data[:limit].decode("utf-8", errors="replace"), complete


def _failure(started: float, kind: ErrorKind, message: str) -> Outcome:
    return Outcome(
        duration_ms=(time.perf_counter() - started) * 1000,
        error_kind=kind,
        error=f"{kind.value}: {message}"[:1000],
    )


def _bounded_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        if len(out) >= MAX_RESPONSE_HEADERS:
            break
        out[name.lower()] = value[:MAX_HEADER_VALUE]
    return out


def classify_exception(exc: BaseException, timeout: float) -> tuple[ErrorKind, str]:
    """Map a client exception to an `ErrorKind` and a short message (never headers or bodies)."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorKind.TIMEOUT, f"no complete response within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, BlockedAddress):
            return ErrorKind.BLOCKED, str(exc.os_error)
        return ErrorKind.DNS, f"cannot resolve {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return ErrorKind.TLS, str(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorKind.BLOCKED, f"invalid URL: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorKind.CONNECTION, f"cannot connect to {exc.host}:{exc.port} ({exc.strerror})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.CONNECTION, "the server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return ErrorKind.PROTOCOL, f"invalid HTTP response: {exc}"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return ErrorKind.CONNECTION, str(exc) or type(exc).__name__
    return ErrorKind.PROTOCOL, f"{type(exc).__name__}: {exc}"
