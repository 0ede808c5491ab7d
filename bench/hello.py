"""The publish baseline: a "hello" POST on hookd's HTTP stack (uvicorn + FastAPI), nothing else.

    python bench/hello.py --port 0        # prints "LISTENING <port>" once it accepts

`POST /v1/events` and `POST /v1/events/batch` read the body, parse it as JSON (orjson, as hookd
does) and answer `202 {"ok":true}`: no validation, no authentication, no storage. Served by
uvicorn configured as `hookd serve` configures it (uvloop, no access log, no server header), in
its own process, so that publish figures can be read as "hookd / the bare HTTP stack".
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

ACCEPTED = b'{"ok":true}'


def create_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def accept(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(ACCEPTED, status_code=202, media_type="application/json")

    app.add_api_route("/v1/events", accept, methods=["POST"])
    app.add_api_route("/v1/events/batch", accept, methods=["POST"])
    return app


async def serve(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=2048)
    config = uvicorn.Config(
        create_app(),
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    server = uvicorn.Server(config)
    print(f"LISTENING {listener.getsockname()[1]}", flush=True)
    await server.serve(sockets=[listener])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    runner(serve(args.port))


if __name__ == "__main__":
    main()
