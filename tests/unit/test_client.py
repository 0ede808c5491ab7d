"""The CLI's HTTP client against a real local HTTP server (http.server in a thread)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from hookd.client import ApiError, Client, path_of
from hookd.domain import errors
from hookd.domain.errors import Problem

PROBLEM = {
    "type": "https://hookd.dev/problems/validation-error",
    "title": "Validation error",
    "status": 422,
    "detail": "invalid endpoint",
    "errors": [
        {"path": "url", "message": "scheme must be http or https"},
        {"path": "event_types[0]", "message": "bad pattern"},
    ],
}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Stub:
    """A local HTTP server answering canned replies by (method, path) and recording requests."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], Reply] = {}
        self.seen: list[Seen] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.seen.append(Seen(self.command, self.path, headers, body))
                reply = stub.replies.get((self.command, self.path.split("?")[0]))
                if reply is None:
                    reply = problem(404, "Not found", "no such route")
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reply(self, method: str, path: str, reply: Reply) -> None:
        self.replies[(method, path)] = reply


def json_reply(status: int, data: Any) -> Reply:
    return Reply(status, orjson.dumps(data), {"content-type": "application/json"})


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Reply:
    doc = {"type": "about:blank", "title": title, "status": status, **extra}
    if detail is not None:
        doc["detail"] = detail
    return Reply(status, orjson.dumps(doc), {"content-type": "application/problem+json"})


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_get_decodes_json_and_sends_the_key(stub: Stub) -> None:
    stub.reply("GET", "/v1/endpoints", json_reply(200, {"data": [], "next_cursor": None}))

    result = Client(stub.url, "hk_secret").get("/v1/endpoints", params={"limit": 5})

    assert result == {"data": [], "next_cursor": None}
    (seen,) = stub.seen
    assert seen.path == "/v1/endpoints?limit=5"
    assert seen.headers["authorization"] == "Bearer hk_secret"
    assert seen.headers["user-agent"].startswith("hookd-cli/")


def test_no_key_no_authorization_header(stub: Stub) -> None:
    stub.reply("GET", "/healthz", json_reply(200, {"status": "ok"}))

    Client(stub.url, None).get("/healthz")

    assert "authorization" not in stub.seen[0].headers


def test_post_and_patch_send_json(stub: Stub) -> None:
    stub.reply("POST", "/v1/events", json_reply(202, {"id": "evt_1", "deliveries": 2}))
    stub.reply("PATCH", "/v1/endpoints/ep_1", json_reply(200, {"id": "ep_1"}))
    api = Client(stub.url + "/", "k")

    assert api.post("/v1/events", json={"type": "a.b", "payload": {"x": 1}})["deliveries"] == 2
    assert api.patch("/v1/endpoints/ep_1", json={"status": "paused"}) == {"id": "ep_1"}

    post, patch = stub.seen
    assert post.headers["content-type"] == "application/json"
    assert orjson.loads(post.body) == {"type": "a.b", "payload": {"x": 1}}
    assert patch.method == "PATCH"
    assert orjson.loads(patch.body) == {"status": "paused"}


def test_delete_with_204_returns_none(stub: Stub) -> None:
    stub.reply("DELETE", "/v1/endpoints/ep_1", Reply(204))

    assert Client(stub.url, "k").delete("/v1/endpoints/ep_1") is None


def test_params_repeat_sequences_and_drop_none(stub: Stub) -> None:
    stub.reply("GET", "/v1/deliveries", json_reply(200, {"data": []}))

    Client(stub.url, "k").get(
        "/v1/deliveries",
        params={"status": ["failed", "dead"], "endpoint_id": None, "limit": 10, "flag": True},
    )

    assert stub.seen[0].path == "/v1/deliveries?status=failed&status=dead&limit=10&flag=true"


def test_a_problem_document_becomes_an_api_error(stub: Stub) -> None:
    stub.reply(
        "POST",
        "/v1/endpoints",
        Reply(422, orjson.dumps(PROBLEM), {"content-type": "application/problem+json"}),
    )

    with pytest.raises(ApiError) as caught:
        Client(stub.url, "k").post("/v1/endpoints", json={})

    exc = caught.value
    assert (exc.status, exc.title, exc.detail) == (422, "Validation error", "invalid endpoint")
    assert exc.errors == (
        Problem("url", "scheme must be http or https"),
        Problem("event_types[0]", "bad pattern"),
    )
    assert str(exc) == "Validation error: invalid endpoint"
    assert isinstance(exc, errors.HookdError)


def test_a_problem_without_detail(stub: Stub) -> None:
    stub.reply("GET", "/v1/x", problem(401, "Unauthorized"))

    with pytest.raises(ApiError) as caught:
        Client(stub.url, None).get("/v1/x")

    assert (caught.value.status, caught.value.title, caught.value.detail) == (
        401,
        "Unauthorized",
        None,
    )
    assert caught.value.errors == ()
    assert str(caught.value) == "Unauthorized"


def test_an_error_page_that_is_not_json(stub: Stub) -> None:
    stub.reply(
        "GET", "/v1/x", Reply(502, b"<html>Bad Gateway</html>", {"content-type": "text/html"})
    )

    with pytest.raises(ApiError) as caught:
        Client(stub.url, "k").get("/v1/x")

    assert caught.value.status == 502
    assert caught.value.title.startswith("HTTP 502")
    assert caught.value.detail == "<html>Bad Gateway</html>"


def test_a_success_that_is_not_json(stub: Stub) -> None:
    stub.reply("GET", "/v1/x", Reply(200, b"hello", {"content-type": "text/plain"}))

    with pytest.raises(ApiError, match="not JSON"):
        Client(stub.url, "k").get("/v1/x")


def test_redirects_are_not_followed(stub: Stub) -> None:
    stub.reply("GET", "/v1/x", Reply(302, b"", {"location": "http://elsewhere.invalid/steal"}))

    with pytest.raises(ApiError) as caught:
        Client(stub.url, "hk_secret").get("/v1/x")

    assert caught.value.status == 302
    assert len(stub.seen) == 1


def test_connection_refused_is_a_friendly_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ApiError) as caught:
        Client(url, "k").get("/v1/endpoints")

    assert caught.value.status is None
    assert str(caught.value) == f"cannot reach hookd at {url}: is `hookd serve` running?"


def test_a_slow_server_times_out(stub: Stub) -> None:
    stub.reply("GET", "/v1/slow", Reply(200, b"{}", delay=1.0))

    with pytest.raises(ApiError, match=r"did not answer in 0\.2 s") as caught:
        Client(stub.url, "k", timeout=0.2).get("/v1/slow")

    assert caught.value.status is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "127.0.0.1:8000"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(errors.ConfigError):
        Client(url, "k")


def test_repr_hides_the_key() -> None:
    assert "hk_secret" not in repr(Client("http://127.0.0.1:8000", "hk_secret"))


def test_path_of_escapes_each_segment() -> None:
    assert path_of("v1", "endpoints", "ep_1") == "/v1/endpoints/ep_1"
    assert path_of("v1", "endpoints", "../admin?x=1") == "/v1/endpoints/..%2Fadmin%3Fx%3D1"
