"""``hookd listen``: a local receiver that verifies webhooks and pretty-prints them.

It accepts a POST on any path, checks the Standard Webhooks signature when secrets are
configured (answering 401 with ``{"error": reason}`` when it fails), prints each request as a
Rich panel, and answers with the configured status (204 by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hookd.domain import errors
from hookd.policy import signing

#: How many webhook-ids are remembered to spot redeliveries.
SEEN_LIMIT = 10_000


@dataclass(frozen=True)
class ListenConfig:
    """Where to listen, which secrets to verify with, and what to answer."""

    host: str = "127.0.0.1"
    port: int = 9000  # 0 picks a free port
    path: str = "/"  # shown in the URL; every path is accepted
    secrets: tuple[str, ...] = field(default=(), repr=False)
    tolerance: int = signing.DEFAULT_TOLERANCE
    status: int = 204
    max_body: int = 1_048_576

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise errors.ConfigError(f"port must be 0..65535, not {self.port}")
        if not self.path.startswith("/"):
            raise errors.ConfigError(f"path must start with '/', not {self.path!r}")
        if not 200 <= self.status <= 599:
            raise errors.ConfigError(f"status must be 200..599, not {self.status}")
        if self.tolerance < 0:
            raise errors.ConfigError(f"tolerance must be >= 0, not {self.tolerance}")
        if self.max_body < 1:
            raise errors.ConfigError(f"max_body must be >= 1, not {self.max_body}")


def build_app(config: ListenConfig, console: Console) -> web.Application:
    """The receiver as an aiohttp application; a malformed secret raises `InvalidSecret`."""
    receiver = _Receiver(config, console)
    app = web.Application(client_max_size=config.max_body)
    app.router.add_post("/{path:.*}", receiver.handle)
    return app


async def run(
    config: ListenConfig, console: Console, *, ready: Callable[[str], None] | None = None
) -> None:
    """Serve until cancelled; once listening, call `ready` with the receiver's URL."""
    runner = web.AppRunner(build_app(config, console), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        if ready is not None:
            ready(_url(config.host, runner.addresses[0][1], config.path))
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class _Receiver:
    """Handles each request: check size and signature, print, answer."""

    def __init__(self, config: ListenConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.keys = [signing.decode_secret(s) for s in config.secrets]
        self.seen: dict[str, None] = {}  # webhook-ids in arrival order, a bounded set

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            reason = f"body larger than {self.config.max_body} bytes"
            return self._reject(request, web.HTTPRequestEntityTooLarge.status_code, reason)
        if self.keys:
            try:
                signing.verify(self.keys, request.headers, body, tolerance=self.config.tolerance)
            except errors.VerificationError as exc:
                return self._reject(request, web.HTTPUnauthorized.status_code, str(exc))
        msg_id = _header(request, "webhook-id", "svix-id")
        redelivery = self._seen_before(msg_id)
        self.console.print(self._panel(request, body, msg_id, redelivery=redelivery))
        return web.Response(status=self.config.status)

    def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        line = Text.assemble(
            ("✗ rejected ", "bold red"),
            (f"POST {request.path}", "red"),
            (f" ({status}): {reason}", "red"),
        )
        self.console.print(line)
        return web.json_response({"error": reason}, status=status)

    def _seen_before(self, msg_id: str) -> bool:
        """Whether `msg_id` arrived before. Remembers it; past the limit the oldest is dropped."""
        if not msg_id:
            return False
        seen = msg_id in self.seen
        self.seen.pop(msg_id, None)
        self.seen[msg_id] = None  # (re)inserted as the newest
        if len(self.seen) > SEEN_LIMIT:
            del self.seen[next(iter(self.seen))]
        return seen

    def _panel(self, request: web.Request, body: bytes, msg_id: str, *, redelivery: bool) -> Panel:
        """The request as a panel: event type, headers that matter, verification, body."""
        payload, content = _render_body(body)
        title = Text(_event_type(payload), style="bold")
        if redelivery:
            title.append(" (redelivery)", style="yellow")

        timestamp = _timestamp(_header(request, "webhook-timestamp", "svix-timestamp"))
        verified = Text("✓", style="green") if self.keys else Text("not verified", style="yellow")
        fields = Table.grid(padding=(0, 2))
        fields.add_column(style="dim")
        fields.add_column()
        fields.add_row("webhook-id", Text(msg_id or "-"))  # Text: header values are not markup
        fields.add_row("timestamp", Text(timestamp))
        fields.add_row("verified", verified)
        subtitle = Text(f"POST {request.path}", style="dim")
        return Panel(Group(fields, Text(), content), title=title, subtitle=subtitle, expand=False)


def _render_body(body: bytes) -> tuple[object, RenderableType]:
    """The parsed body (None when it is not JSON) and how to show it."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, Text(body.decode("utf-8", errors="replace"))
    return payload, JSON.from_data(payload, indent=2)


def _event_type(payload: object) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("type"), str):
        return str(payload["type"])
    if isinstance(payload, list):
        return f"batch of {len(payload)}"
    return "(no event type)"


def _header(request: web.Request, *names: str) -> str:
    for name in names:
        value = request.headers.get(name, "").strip()
        if value:
            return value
    return ""


def _timestamp(raw: str) -> str:
    """The timestamp header with its UTC time, when it reads as one."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
        return raw or "-"
    try:
        when = datetime.fromtimestamp(int(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return raw
    return f"{raw} ({when.isoformat().replace('+00:00', 'Z')})"


def _url(host: str, port: int, path: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
