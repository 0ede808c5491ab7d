"""/v1/endpoints: create, list, read, change and delete delivery destinations; pause, resume,
read their health (circuit breaker, back-off), rotate the secret, send a test (stats are in
routes/stats.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hookd.api import auth, problems, ratelimit, schemas, serialize
from hookd.api.auth import Caller, TenantQuery
from hookd.api.deps import Cursor, EngineDep, Limit
from hookd.api.jsonbody import StrictJSONRoute
from hookd.store.codec import rfc3339

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"], route_class=StrictJSONRoute)


@router.post(
    "",
    status_code=201,
    summary="Create an endpoint",
    response_description="The endpoint, with its signing secret (shown only here).",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def create_endpoint(
    body: schemas.EndpointCreate, key: Caller, engine: EngineDep
) -> schemas.EndpointCreated:
    endpoint, secret = await engine.create_endpoint(
        auth.target_tenant(key, body.tenant_id),
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        headers=body.headers,
        timeout=body.timeout,
        retry_policy=body.retry_policy,
        max_attempts=body.max_attempts,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        filter=body.filter,
        rate_limit=None if body.rate_limit is None else body.rate_limit.model_dump(),
        default_priority=body.default_priority,
        max_in_flight=body.max_in_flight,
        ordering=body.ordering,
        disable_after=body.disable_after,
        fallback_url=body.fallback_url,
        breaker=body.breaker_settings(),
        fallback_after=body.fallback_after,
    )
    return serialize.endpoint_created(endpoint, secret)


@router.get("", summary="List endpoints", responses=problems.responses(401, 404, 422))
async def list_endpoints(
    key: Caller,
    engine: EngineDep,
    tenant_id: TenantQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> schemas.EndpointPage:
    page = await engine.list_endpoints(auth.list_scope(key, tenant_id), limit=limit, cursor=cursor)
    return serialize.endpoint_page(page)


@router.get("/{endpoint_id}", summary="Get an endpoint", responses=problems.responses(401, 404))
async def get_endpoint(endpoint_id: str, key: Caller, engine: EngineDep) -> schemas.Endpoint:
    return serialize.endpoint(await engine.get_endpoint(auth.scope(key), endpoint_id))


@router.patch(
    "/{endpoint_id}",
    summary="Change an endpoint",
    responses=problems.responses(400, 401, 404, 409, 413, 422),
)
async def update_endpoint(
    endpoint_id: str, body: schemas.EndpointUpdate, key: Caller, engine: EngineDep
) -> schemas.Endpoint:
    endpoint = await engine.update_endpoint(auth.scope(key), endpoint_id, **body.changes())
    return serialize.endpoint(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an endpoint, with its deliveries and their attempts",
    responses=problems.responses(401, 404),
)
async def delete_endpoint(endpoint_id: str, key: Caller, engine: EngineDep) -> Response:
    await engine.delete_endpoint(auth.scope(key), endpoint_id)
    return Response(status_code=204)


# operations: pause, resume, rotate the secret, send a test ------------------------------------
@router.post(
    "/{endpoint_id}/pause",
    summary="Pause an endpoint: its deliveries wait (parked), nothing is dropped",
    responses=problems.responses(401, 404, 409),
)
async def pause_endpoint(endpoint_id: str, key: Caller, engine: EngineDep) -> schemas.Endpoint:
    return serialize.endpoint(await engine.pause_endpoint(auth.scope(key), endpoint_id))


@router.post(
    "/{endpoint_id}/resume",
    summary="Resume a paused or disabled endpoint; what waited is due at once (or discarded)",
    responses=problems.responses(400, 401, 404, 409, 413, 422),
)
async def resume_endpoint(
    endpoint_id: str,
    key: Caller,
    engine: EngineDep,
    body: schemas.EndpointResume | None = None,
) -> schemas.Endpoint:
    discard = body is not None and body.discard_parked
    endpoint = await engine.resume_endpoint(auth.scope(key), endpoint_id, discard_parked=discard)
    return serialize.endpoint(endpoint)


@router.get(
    "/{endpoint_id}/health",
    summary="An endpoint's health: its status, circuit breaker, back-off and rate-limit bucket",
    response_description="The state now; a fresh endpoint's breaker is closed with empty counts.",
    responses=problems.responses(401, 404),
)
async def endpoint_health(
    endpoint_id: str, key: Caller, engine: EngineDep
) -> schemas.EndpointHealth:
    return serialize.endpoint_health(await engine.endpoint_health(auth.scope(key), endpoint_id))


@router.post(
    "/{endpoint_id}/secret/rotate",
    summary="Rotate the signing secret, keeping the old one valid for a grace period",
    response_description="The new secret (shown only here) and when the old one stops.",
    responses=problems.responses(400, 401, 404, 409, 413, 422),
)
async def rotate_secret(
    endpoint_id: str, key: Caller, engine: EngineDep, body: schemas.SecretRotate | None = None
) -> schemas.SecretRotated:
    body = body or schemas.SecretRotate()
    _, secret, expires_at = await engine.rotate_secret(
        auth.scope(key), endpoint_id, grace_period=body.grace_period, secret=body.secret
    )
    return schemas.SecretRotated(secret=secret, expires_at=rfc3339(expires_at))


@router.post(
    "/{endpoint_id}/test",
    summary="Send one synthetic signed event to the endpoint now",
    response_description="What the receiver answered (a failure to deliver is a 200 too).",
    responses=problems.responses(400, 401, 404, 413, 422),
)
async def send_test(
    endpoint_id: str,
    key: Caller,
    engine: EngineDep,
    request: Request,
    response: Response,
    body: schemas.EndpointTest | None = None,
) -> schemas.EndpointTestResult:
    body = body or schemas.EndpointTest()
    endpoint = await engine.get_endpoint(auth.scope(key), endpoint_id)
    limit: ratelimit.SendTestLimit = request.app.state.test_send_limit
    response.headers.update(limit.take(endpoint.id))
    result = await engine.send_test(
        auth.scope(key), endpoint.id, event_type=body.event_type, payload=body.payload
    )
    return serialize.endpoint_test_result(result)
