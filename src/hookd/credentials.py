"""Where the CLI finds an API key without copy-paste: ``credentials.json`` in the config directory.

``hookd serve`` saves the admin key it generates (or ``HOOKD_API_KEY``) here, under the server's
URL; client commands look it up by the URL they talk to. The file maps a normalised URL
(``scheme://host:port``) to ``{"api_key": ...}``; it is mode 0600 in a 0700 directory and is
replaced atomically, so a reader never sees half a file.

The directory is ``$HOOKD_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/hookd``, else ``~/.config/hookd``.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from hookd.domain import errors

FILE_NAME = "credentials.json"

#: Hosts that mean "this machine": a server bound to 0.0.0.0 is found at 127.0.0.1.
_LOCAL_HOSTS = frozenset({"0.0.0.0", "localhost", "::", "::1", "127.0.0.1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("HOOKD_CONFIG_DIR"):
        return Path(env["HOOKD_CONFIG_DIR"])
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "hookd"
    return Path.home() / ".config" / "hookd"


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / FILE_NAME


def normalise_url(url: str) -> str:
    """``scheme://host:port`` of a server URL; local addresses all become 127.0.0.1.

    Raises `errors.ConfigError` when the URL is not an http(s) URL with a host.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise errors.ConfigError(f"not a valid server URL: {url!r}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise errors.ConfigError(f"not an http(s) server URL: {url!r}")
    if host in _LOCAL_HOSTS:
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or _DEFAULT_PORTS[scheme]}"


def load(url: str, *, path: Path | None = None) -> str | None:
    """The API key saved for the server at `url`, or None."""
    entry = _read(path or credentials_path()).get(normalise_url(url))
    if isinstance(entry, dict) and isinstance(entry.get("api_key"), str):
        return str(entry["api_key"])
    return None


def save(url: str, api_key: str, *, path: Path | None = None) -> Path:
    """Remember `api_key` for the server at `url`; returns the file written."""
    target = path or credentials_path()
    data = _read(target)
    data[normalise_url(url)] = {"api_key": api_key}
    _write_atomic(target, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return target


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise errors.ConfigError(f"{path} is not a JSON object; fix or delete it")
    return data


def _write_atomic(path: Path, content: bytes) -> None:
    """Write a 0600 temp file beside `path`, then rename it over `path` (atomic on POSIX)."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # left over by a process with our pid that died mid-write
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise errors.ConfigError(f"cannot write {path}: {exc.strerror}") from None
