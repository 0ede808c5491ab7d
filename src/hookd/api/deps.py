"""Dependencies the routes share: the engine, and the paging query parameters."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Query, Request

from hookd.engine import MAX_PAGE, Engine


async def get_engine(request: Request) -> Engine:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread hop
    # (and a fight for the GIL) on every request for what is an attribute lookup
    return cast(Engine, request.app.state.engine)


EngineDep = Annotated[Engine, Depends(get_engine)]

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page (1..{MAX_PAGE}).")]
Cursor = Annotated[
    str | None,
    Query(max_length=256, description="`next_cursor` of the previous page; absent: the first."),
]
