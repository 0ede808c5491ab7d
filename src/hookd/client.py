"""A small synchronous client for hookd's HTTP API, for the CLI (stdlib ``urllib``: no dependency).

    api = Client("http://127.0.0.1:8000", "hk_...")
    created = api.post("/v1/endpoints", json={"url": "https://example.com/h", "event_types": ["*"]})

Every failure is an `ApiError`: a problem document (RFC 9457) from the server, a non-JSON error
page, or no answer at all (`status` None). Redirects are not followed, so the API key is never
sent anywhere but `base_url`.
"""

from __future__ import annotations

import http.client
import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import IO, Any

import orjson

from hookd import __version__
from hookd.domain import errors
from hookd.domain.errors import Problem

#: The most of an error body read; problem documents are small.
MAX_ERROR_BODY = 64 * 1024

Params = Mapping[str, object]


class ApiError(errors.HookdError):
    """A request to hookd failed: `status` is the HTTP status, or None when nothing answered."""

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str | None = None,
        errors: Sequence[Problem] = (),
    ) -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: tuple[Problem, ...] = tuple(errors)


class Client:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigError(f"not an http(s) server URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        # env proxies apply, except to this machine: a local hookd is never behind a proxy
        proxies = urllib.request.ProxyHandler({} if _is_local(parts.hostname) else None)
        self._opener = urllib.request.build_opener(proxies, _NoRedirect())

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, api_key={'***' if self._api_key else None})"

    def get(self, path: str, *, params: Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, params: Params | None = None) -> Any:
        return self.request("POST", path, json=json, params=params)

    def patch(self, path: str, json: Any = None, *, params: Params | None = None) -> Any:
        return self.request("PATCH", path, json=json, params=params)

    def delete(self, path: str, json: Any = None, *, params: Params | None = None) -> Any:
        return self.request("DELETE", path, json=json, params=params)

    def request(
        self, method: str, path: str, *, json: Any = None, params: Params | None = None
    ) -> Any:
        """Send one request; the decoded JSON answer, or None for an empty one (204)."""
        url = self.base_url + path + _query(params)
        headers = {
            "accept": "application/json, application/problem+json",
            "user-agent": f"hookd-cli/{__version__}",
        }
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        body = None
        if json is not None:
            body = orjson.dumps(json)
            headers["content-type"] = "application/json"
        # the scheme was checked in __init__: http or https only
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status: int = response.status
                raw: bytes = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raise _from_error_response(exc.code, exc.reason, exc.fp) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(
                status, f"unexpected answer from {self.base_url}", "the body is not JSON"
            ) from None

    def _unreachable(self, exc: BaseException) -> ApiError:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        where = f"cannot reach hookd at {self.base_url}"
        if isinstance(reason, ConnectionRefusedError):
            return ApiError(None, where, "is `hookd serve` running?")
        if isinstance(reason, TimeoutError):
            return ApiError(None, f"hookd at {self.base_url} did not answer in {self.timeout:g} s")
        return ApiError(None, where, str(reason) or type(reason).__name__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an error instead of following it (with our Authorization header)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> None:
        return None


def _from_error_response(status: int, reason: str, body: IO[bytes] | None) -> ApiError:
    """An `ApiError` from an error answer: a problem document when it is one, else the raw text."""
    raw = b""
    if body is not None:
        try:
            raw = body.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            raw = b""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        title = doc.get("title")
        detail = doc.get("detail")
        return ApiError(
            status,
            title if isinstance(title, str) and title else f"HTTP {status} {reason}".strip(),
            detail if isinstance(detail, str) and detail else None,
            _problems(doc.get("errors")),
        )
    text = raw.decode("utf-8", errors="replace").strip()
    return ApiError(status, f"HTTP {status} {reason}".strip(), text[:200] or None)


def _problems(value: object) -> list[Problem]:
    if not isinstance(value, list):
        return []
    return [
        Problem(str(item.get("path", "")), str(item.get("message", "")))
        for item in value
        if isinstance(item, dict)
    ]


def _query(params: Params | None) -> str:
    """``?a=1&s=x&s=y`` from a mapping; None values are left out, sequences repeat the name."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((name, text))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def path_of(*segments: str) -> str:
    """An API path from segments, each percent-encoded: ``path_of("v1", "endpoints", id)``."""
    return "".join("/" + urllib.parse.quote(s, safe="") for s in segments)
