"""Errors as RFC 9457 problem documents (`application/problem+json`).

Every error response of the API goes through `problem_response`: hookd's own errors, FastAPI's
request validation, Starlette's 404/405, and anything unexpected (a generic 500 whose cause is
logged on `hookd.api`, never shown to the client).

    HookdError            ValidationError 422 · NotFound 404 · Conflict 409 · PayloadTooLarge 413
                          Unauthorized 401 · Forbidden 403 · StoreUnavailable 503 · else 500
    RequestValidationError malformed JSON 400, otherwise 422 with every problem listed
    HTTPException          its own status (404 unknown route, 405 wrong method, 413 body too large)
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookd.api import schemas
from hookd.domain import errors

log = logging.getLogger("hookd.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://hookd.dev/problems/"

#: status -> (slug, title) for the statuses the API answers with.
_KINDS: dict[int, tuple[str, str]] = {
    400: ("malformed-request", "Malformed request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    422: ("validation-error", "Validation error"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}

#: Rewordings of pydantic's messages that read badly out of context, by error type.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
}
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem_response(
    status: int,
    detail: str,
    *,
    problems: Sequence[errors.Problem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    slug, title = _kind(status)
    document = schemas.Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        errors=(
            None
            if problems is None
            else [schemas.ProblemError(path=p.path, message=p.message) for p in problems]
        ),
    )
    return ProblemResponse(
        document.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


def _kind(status: int) -> tuple[str, str]:
    if status in _KINDS:
        return _KINDS[status]
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.lower().replace(" ", "-"), phrase


# handlers ---------------------------------------------------------------------------------------
def hookd_error(request: Request, exc: Exception) -> ProblemResponse:
    if isinstance(exc, errors.ValidationError):
        return problem_response(422, exc.message, problems=exc.problems)
    if isinstance(exc, errors.NotFound):
        return problem_response(404, str(exc))
    if isinstance(exc, errors.Conflict):
        return problem_response(409, str(exc))
    if isinstance(exc, errors.PayloadTooLarge):
        return problem_response(413, str(exc))
    if isinstance(exc, errors.Forbidden):
        return problem_response(403, str(exc))
    if isinstance(exc, errors.Unauthorized):
        return problem_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, errors.StoreUnavailable):
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(503, "the database cannot be reached; try again shortly")
    return internal_error(request, exc)


def request_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    found = list(exc.errors())
    for error in found:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "not valid JSON")
            position = error["loc"][-1] if len(error["loc"]) > 1 else None
            where = f" at position {position}" if isinstance(position, int) else ""
            return problem_response(400, f"the request body is not valid JSON: {reason}{where}")
    problems = [errors.Problem(_path(e["loc"]), _message(e)) for e in found]
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return problem_response(422, f"invalid request ({count})", problems=problems)


def http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    headers = exc.headers
    if status == 404:
        detail = f"no route for {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        allowed = _allowed_methods(request, (headers or {}).get("Allow"))
        headers = {**(headers or {}), "Allow": allowed}
    elif isinstance(exc.detail, str) and exc.detail != http.HTTPStatus(status).phrase:
        detail = exc.detail
    else:
        detail = _kind(status)[1]
    return problem_response(status, detail, headers=headers)


def _allowed_methods(request: Request, named: str | None) -> str:
    """Every method the path supports, from the OpenAPI document (Starlette's 405 names only the
    first matching route's methods, `named`)."""
    methods = {m.strip() for m in (named or "").split(",") if m.strip()}
    paths = request.app.openapi().get("paths", {}) if isinstance(request.app, FastAPI) else {}
    path = request.url.path
    # a literal path (/v1/events/batch) is its own resource, not an id of /v1/events/{event_id}
    templates = [path] if path in paths else list(paths)
    for template in templates:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(method.upper() for method in paths[template])
    return ", ".join(sorted(methods))


def internal_error(request: Request, exc: BaseException) -> ProblemResponse:
    log.error(
        "unexpected error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return problem_response(500, "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Register the handlers above and the catch-all for unexpected errors on `app`."""
    app.add_exception_handler(errors.HookdError, hookd_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(UnexpectedErrors)


class UnexpectedErrors:
    """Answer an exception no handler took with a generic 500 problem, and log it.

    Starlette's own fallback re-raises to the server after answering (logging the error twice);
    this answers, logs once on `hookd.api`, and stops there. An error after the response has
    started cannot be answered any more, so it propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            if started:
                raise
            response = internal_error(Request(scope), exc)
            await response(scope, receive, send)


# OpenAPI ----------------------------------------------------------------------------------------
_DESCRIPTIONS = {
    400: "The request body is not valid JSON.",
    401: "The API key is missing or invalid.",
    403: "The API key may not do this (e.g. a tenant key asking for an admin key).",
    404: "No such resource (or it belongs to another tenant).",
    409: "The request conflicts with the resource's current state.",
    413: "The request body or the event payload is too large.",
    422: "The request is invalid; `errors` lists every problem.",
    503: "The service is not ready.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem documents for `statuses`."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": _DESCRIPTIONS[status], "content": {MEDIA_TYPE: {"schema": ref}}}
        for status in statuses
    }


def openapi_schemas() -> dict[str, Any]:
    """JSON Schemas of the problem document, for the OpenAPI components `responses` refers to."""
    _, top = models_json_schema(
        [(schemas.Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    found: dict[str, Any] = top.get("$defs", {})
    return found


def _path(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "body"


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing" and tuple(error.get("loc", ())) == ("body",):
        return "a JSON body is required"
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error.get("msg", "is invalid"))
    for prefix in _MESSAGE_PREFIXES:
        message = message.removeprefix(prefix)
    return message
