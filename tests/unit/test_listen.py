"""`hookd listen`: the local receiver, served on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from rich.console import Console

from hookd.domain import errors
from hookd.policy import signing
from hookd.receiver import listen
from hookd.receiver.listen import ListenConfig, build_app, run

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAYLOAD = {"type": "order.filled", "timestamp": "2024-05-01T12:00:00Z", "data": {"qty": 3}}
BODY = orjson.dumps(PAYLOAD)


def signed(
    body: bytes, *, msg_id: str = "msg_1", timestamp: int | None = None, secret: str = SECRET
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed now (or at `timestamp`)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.sign(signing.decode_secret(secret), msg_id, ts, body),
        "content-type": "application/json",
    }


class Listener:
    """A running listen app and everything its console printed."""

    def __init__(self, server: TestServer, output: io.StringIO) -> None:
        self.server = server
        self.output = output

    def url(self, path: str = "/") -> str:
        return str(self.server.make_url(path))

    @property
    def printed(self) -> str:
        return self.output.getvalue()


Start = Callable[[ListenConfig], Awaitable[Listener]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[TestServer] = []

    async def _start(config: ListenConfig) -> Listener:
        output = io.StringIO()
        server = TestServer(build_app(config, Console(file=output, width=120)), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Listener(server, output)

    yield _start
    for server in servers:
        await server.close()


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.read()


async def test_signed_request_is_accepted_and_printed(
    start: Start, http: aiohttp.ClientSession
) -> None:
    listener = await start(ListenConfig(secrets=(SECRET,)))
    status, body = await post(http, listener.url("/hooks"), BODY, signed(BODY))
    assert (status, body) == (204, b"")
    printed = listener.printed
    assert "order.filled" in printed
    assert "msg_1" in printed
    assert "verified" in printed
    assert "✓" in printed
    assert '"qty": 3' in printed  # the body, pretty-printed
    assert "POST /hooks" in printed
    assert "redelivery" not in printed
    assert "not verified" not in printed


async def test_badly_signed_request_is_rejected(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig(secrets=(SECRET,)))
    headers = signed(BODY, secret="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
    status, body = await post(http, listener.url(), BODY, headers)
    assert status == 401
    assert orjson.loads(body) == {"error": "no matching signature"}
    assert "rejected" in listener.printed
    assert "no matching signature" in listener.printed
    assert "order.filled" not in listener.printed


async def test_old_timestamp_is_rejected_with_the_reason(
    start: Start, http: aiohttp.ClientSession
) -> None:
    listener = await start(ListenConfig(secrets=(SECRET,), tolerance=300))
    headers = signed(BODY, timestamp=int(time.time()) - 3600)
    status, body = await post(http, listener.url(), BODY, headers)
    assert status == 401
    assert "timestamp too old" in orjson.loads(body)["error"]
    assert "timestamp too old" in listener.printed


async def test_missing_headers_are_rejected(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig(secrets=(SECRET,)))
    status, body = await post(http, listener.url(), BODY, {})
    assert status == 401
    assert orjson.loads(body)["error"].startswith("missing header(s): webhook-id")


async def test_any_of_several_secrets_verifies(start: Start, http: aiohttp.ClientSession) -> None:
    other = signing.generate_secret()
    listener = await start(ListenConfig(secrets=(other, SECRET)))
    status, _ = await post(http, listener.url(), BODY, signed(BODY))
    assert status == 204


async def test_without_secrets_requests_are_shown_as_not_verified(
    start: Start, http: aiohttp.ClientSession
) -> None:
    listener = await start(ListenConfig())
    status, _ = await post(http, listener.url(), BODY, {"webhook-id": "msg_x"})
    assert status == 204
    assert "not verified" in listener.printed
    assert "✓" not in listener.printed
    assert "order.filled" in listener.printed


async def test_same_webhook_id_is_marked_as_redelivery(
    start: Start, http: aiohttp.ClientSession
) -> None:
    listener = await start(ListenConfig(secrets=(SECRET,)))
    await post(http, listener.url(), BODY, signed(BODY, msg_id="msg_a"))
    assert "(redelivery)" not in listener.printed
    await post(http, listener.url(), BODY, signed(BODY, msg_id="msg_b"))
    assert "(redelivery)" not in listener.printed
    await post(http, listener.url(), BODY, signed(BODY, msg_id="msg_a"))
    assert listener.printed.count("(redelivery)") == 1


async def test_redelivery_memory_is_bounded(
    start: Start, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listen, "SEEN_LIMIT", 2)
    listener = await start(ListenConfig())
    for msg_id in ("msg_a", "msg_b", "msg_c", "msg_a"):  # msg_a is forgotten when msg_c arrives
        await post(http, listener.url(), BODY, {"webhook-id": msg_id})
    assert "(redelivery)" not in listener.printed
    await post(http, listener.url(), BODY, {"webhook-id": "msg_c"})
    assert listener.printed.count("(redelivery)") == 1


async def test_configured_status_is_returned(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig(status=503))
    status, _ = await post(http, listener.url(), BODY, {})
    assert status == 503


async def test_oversized_body_is_refused(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig(max_body=1024))
    status, body = await post(http, listener.url(), b"x" * 2048, {})
    assert status == 413
    assert orjson.loads(body) == {"error": "body larger than 1024 bytes"}
    assert "body larger than 1024 bytes" in listener.printed


async def test_non_json_body_is_printed_raw(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig())
    status, _ = await post(http, listener.url(), b"plain [bold]text[/bold]", {})
    assert status == 204
    assert "plain [bold]text[/bold]" in listener.printed  # raw, not read as Rich markup
    assert "(no event type)" in listener.printed


async def test_json_array_is_shown_as_a_batch(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig())
    await post(http, listener.url(), orjson.dumps([PAYLOAD, PAYLOAD]), {})
    assert "batch of 2" in listener.printed


async def test_only_post_is_accepted(start: Start, http: aiohttp.ClientSession) -> None:
    listener = await start(ListenConfig())
    async with http.get(listener.url()) as response:
        assert response.status == 405


def test_malformed_secret_fails_when_building() -> None:
    with pytest.raises(errors.InvalidSecret):
        build_app(ListenConfig(secrets=("whsec_%%%%",)), Console(file=io.StringIO()))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 70000}, "port"),
        ({"path": "hooks"}, "path"),
        ({"status": 99}, "status"),
        ({"tolerance": -1}, "tolerance"),
        ({"max_body": 0}, "max_body"),
    ],
)
def test_config_is_checked(changes: dict[str, object], message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        ListenConfig(**changes)  # type: ignore[arg-type]


def test_config_repr_hides_secrets() -> None:
    assert SECRET not in repr(ListenConfig(secrets=(SECRET,)))


async def test_run_serves_until_cancelled(http: aiohttp.ClientSession) -> None:
    output = io.StringIO()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    config = ListenConfig(port=0, path="/hooks", secrets=(SECRET,))
    task = asyncio.create_task(run(config, Console(file=output, width=120), ready=ready.set_result))
    url = await asyncio.wait_for(ready, timeout=5)
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/hooks")
    assert not url.endswith(":0/hooks")

    status, _ = await post(http, url, BODY, signed(BODY))
    assert status == 204
    assert "order.filled" in output.getvalue()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, url, BODY, signed(BODY))
