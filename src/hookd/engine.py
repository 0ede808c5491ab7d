"""The engine: hookd's use cases over a store, a sender and a worker.

The HTTP API and the CLI call it; so can a Python application that embeds hookd:

    async with Engine(Settings(db_path=Path("hookd.db"))) as engine:
        endpoint, secret = await engine.create_endpoint(
            DEFAULT_TENANT, url="https://example.com/hook", event_types=["order.*"])
        await engine.publish(DEFAULT_TENANT, "order.filled", {"id": 42})

Input is validated here (every problem reported at once, as `ValidationError.problems`), so every
entry point gets the same rules and the same messages.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Protocol

import orjson
from jsonschema.protocols import Validator

from hookd import crypto, metrics, stats
from hookd.config import Settings
from hookd.delivery import probe
from hookd.delivery.http1 import NativeSender
from hookd.delivery.processes import WorkerProcesses
from hookd.delivery.sender import HttpSender, Sender
from hookd.delivery.ssrf import AddressPolicy, validate_url
from hookd.delivery.worker import Worker
from hookd.domain import errors, ids, tenants
from hookd.domain.errors import Problem
from hookd.domain.models import (
    DEAD_LETTER_STATUSES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointOrdering,
    EndpointRateLimit,
    EndpointSecret,
    EndpointStatus,
    Event,
    EventType,
    PublishResult,
    Secret,
)
from hookd.policy import admission, patterns, retry, rotation, schemas, signing
from hookd.policy.admission import Gate
from hookd.policy.breaker import BreakerSettings, BreakerState, Transition
from hookd.store.port import ApiKey, DeliveryFilter, EventFilter, Page, Store
from hookd.store.sqlite import SqliteStore


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Not given", as opposed to None, in partial updates.
UNSET: Final = _Unset()

MAX_PATTERNS = 100
MAX_HEADERS = 32
MAX_HEADER_VALUE = 4096
MAX_METADATA_BYTES = 16 * 1024
MAX_TEXT = 1024
MAX_IDEMPOTENCY_KEY = 256
MAX_TIMESTAMP = 253402300800.0  # 10000-01-01T00:00:00Z: occurred_at must be before it
MAX_PAGE = 500
MAX_BATCH = 1000  # events in one batch publish
MAX_BATCH_PROBLEMS = 1000  # problems listed for one batch (a last one says there were more)
MAX_FILTER_BYTES = 16 * 1024
#: Seconds a valid API key's record is reused before the store is asked again, and how many.
KEY_CACHE_SECONDS = 2.0
KEY_CACHE_SIZE = 1024
MAX_IN_FLIGHT = 10_000  # the most an endpoint's `max_in_flight` may be
MAX_DISABLE_AFTER = 365 * 86400.0  # the most an endpoint's `disable_after` may be (seconds)
MAX_RATE = 1_000_000  # the most `rate_limit.per_second` and `rate_limit.burst` may be
VALIDATOR_CACHE = 1024  # compiled event-type schemas kept
#: How often a change to an endpoint is made again when something else changed the endpoint
#: between reading and storing it (`Engine._change_endpoint`).
ENDPOINT_CHANGE_TRIES = 8


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointHealth:
    """An endpoint's health now (`Engine.endpoint_health`): its status and what its shared
    sending state (hookd.policy.admission.Gate) says of it. Times are Unix seconds."""

    endpoint_id: str
    status: EndpointStatus
    status_reason: str | None
    last_success_at: float | None
    failing_since: float | None
    breaker: BreakerState
    breaker_until: float | None  # open: when a probe may go; half-open: when the probe is lost
    cooldown: float  # the cool-down in force (0.0 until it first opens)
    tripped_at: float | None  # when it last left `closed`
    successes: int  # in the breaker's window ending now
    failures: int
    settings: BreakerSettings
    history: tuple[Transition, ...]  # the latest transitions, oldest first
    backoff_until: float | None  # None: not backing off
    tokens: float | None  # in the rate limit's bucket now; None without a rate limit
    checked_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class EventInput:
    """One event of a batch publish, as given (validated by `Engine.publish_batch`)."""

    type: str
    payload: Mapping[str, Any]
    idempotency_key: str | None = None
    occurred_at: float | None = None
    priority: int | None = None


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "expect",
    }
)


def default_sender(settings: Settings) -> Sender:
    """The HTTP client `settings.worker.http_client` names, with the SSRF guard the settings
    allow."""
    policy = AddressPolicy(settings.allow_private_networks)
    client = NativeSender if settings.worker.http_client == "native" else HttpSender
    return client(
        policy,
        max_connections=settings.worker.concurrency,
        excerpt_bytes=settings.response_excerpt_bytes,
    )


class ApiPeers(Protocol):
    """The other API processes of this service (hookd.api.processes): in the owner, the ones it
    started; in one of those, the link to its owner."""

    def notify(self) -> None:
        """Something may be due now (this process published): the workers elsewhere wake."""

    async def not_ready_reason(self) -> str | None:
        """Why the service is not ready (an API process down), or None."""

    async def metrics(self, local: Callable[[], Awaitable[bytes]]) -> bytes:
        """The service's metrics: `local` renders the owner's exposition."""


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        sender: Sender | None = None,
        run_worker: bool = True,
    ) -> None:
        self.settings = settings
        self.store: Store = store or default_store(
            settings,
            shared=(run_worker and settings.worker.processes > 1) or settings.api_processes > 1,
        )
        # valid API keys' records by key hash, with when to look again (see `authenticate`)
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        self._keys_generation = 0
        self._sender = sender or default_sender(settings)
        #: What was published and delivered, for /metrics (hookd.metrics).
        self.counters = metrics.DeliveryCounters(endpoint_cap=settings.metrics_endpoint_cap)
        self.worker: Worker | None = (
            Worker(
                self.store,
                self._sender,
                settings,
                on_result=self.counters.attempt_finished,
                on_breaker=self.counters.breaker_changed,
            )
            if run_worker
            else None
        )
        #: the worker processes beside this one (`settings.worker.processes` > 1)
        self.processes: WorkerProcesses | None = (
            WorkerProcesses(
                settings, settings.worker.processes - 1, self.counters, self._release_worker
            )
            if run_worker and settings.worker.processes > 1
            else None
        )
        #: the other API processes (`settings.api_processes` > 1), set by whoever starts them
        self.api_peers: ApiPeers | None = None
        self.started_at = time.time()
        # compiled payload schemas by (tenant, type name, updated_at): an edit is a new key
        self._validators: collections.OrderedDict[tuple[str, str, float], Validator] = (
            collections.OrderedDict()
        )

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        await self.store.open()
        try:
            if self.worker is not None:
                await self.worker.start()  # frees the leases of an earlier run, first
            if self.processes is not None:
                await self.processes.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        try:
            stopping = [w.stop() for w in (self.processes, self.worker) if w is not None]
            outcomes = await asyncio.gather(*stopping, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            await self._sender.close()
            await self.store.close()

    async def _release_worker(self, worker_id: str) -> int:
        """Give back the leases of a worker process that died; wake the workers for them."""
        released = await self.store.release_worker(worker_id=worker_id, now=time.time())
        if released:
            self.notify()
        return released

    def notify(self) -> None:
        """Something may be due now (a publish, a resume, a replay): wake the workers."""
        if self.worker is not None:
            self.worker.notify()
        if self.processes is not None:
            self.processes.notify()
        if self.api_peers is not None:
            self.api_peers.notify()

    async def not_ready_reason(self) -> str | None:
        """Why this engine cannot do its work now, or None when it can."""
        try:
            await self.store.ping()
        except errors.StoreError:
            return "the database does not answer"
        if self.worker is not None and not self.worker.alive:
            return "the delivery worker is not running"
        if self.processes is not None and (reason := self.processes.not_ready_reason()):
            return reason
        if self.api_peers is not None:
            return await self.api_peers.not_ready_reason()
        return None

    # API keys ----------------------------------------------------------------------------------
    async def create_api_key(
        self, tenant_id: str | None, *, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for one tenant (or an admin key when `tenant_id` is None); shown once."""
        check = _Checker()
        if tenant_id is not None:
            check.run(tenants.validate_tenant_id, tenant_id, "tenant_id")
        check.text(name, "name")
        check.raise_if_any("invalid API key")
        key = crypto.generate_api_key()
        return await self._add_key(key, tenant_id=tenant_id, name=name), key

    async def list_api_keys(
        self, tenant_id: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ApiKey]:
        """Keys newest first, revoked ones included; `tenant_id` None: every key (admin ones
        too), else that tenant's. Keys are few, so the page is cut here from the full list."""
        keys = sorted(await self.store.list_api_keys(tenant_id), key=lambda k: k.id, reverse=True)
        if cursor is not None:
            keys = [k for k in keys if k.id < cursor]
        limit = _limit(limit)
        if len(keys) > limit:
            return Page(keys[:limit], keys[limit - 1].id)
        return Page(keys, None)

    async def revoke_api_key(self, tenant_id: str | None, key_id: str) -> ApiKey:
        """Revoke a key: requests with it are refused from now on. Revoking a revoked key changes
        nothing. The last active admin key cannot be revoked (`Conflict`): that would lock every
        operator out."""
        key = await self.store.get_api_key(tenant_id, key_id)
        if key is None:
            raise errors.NotFound("API key", key_id)
        if key.tenant_id is None and key.revoked_at is None:
            admins = [
                k
                for k in await self.store.list_api_keys(None)
                if k.tenant_id is None and k.revoked_at is None
            ]
            if len(admins) <= 1:
                raise errors.Conflict(
                    f"{key_id} is the last active admin key; create another admin key first"
                )
        revoked = await self.store.revoke_api_key(tenant_id, key_id, now=time.time())
        self._keys.clear()
        self._keys_generation += 1
        if revoked is None:  # deleted meanwhile (no adapter deletes keys today)
            raise errors.NotFound("API key", key_id)
        return revoked

    async def bootstrap_admin_key(self) -> str | None:
        """Make sure an admin key exists. Returns a newly generated key (to show once), else None.

        `HOOKD_API_KEY`, when set, is registered as an admin key; otherwise a key is generated
        the first time the database has no admin key.
        """
        if self.settings.api_key is not None:
            key = self.settings.api_key.reveal()
            if await self.store.find_api_key(crypto.hash_api_key(key)) is None:
                try:
                    await self._add_key(key, tenant_id=None, name="HOOKD_API_KEY")
                except errors.StoreError:  # another process (PostgreSQL) added it meanwhile
                    if await self.store.find_api_key(crypto.hash_api_key(key)) is None:
                        raise
            return None
        if any(
            k.tenant_id is None and k.revoked_at is None
            for k in await self.store.list_api_keys(None)
        ):
            return None
        key = crypto.generate_api_key()
        await self._add_key(key, tenant_id=None, name="admin (generated at first start)")
        return key

    async def _add_key(self, key: str, *, tenant_id: str | None, name: str | None) -> ApiKey:
        record = ApiKey(
            id=ids.new_id(ids.API_KEY),
            prefix=crypto.api_key_prefix(key),
            key_hash=crypto.hash_api_key(key),
            tenant_id=tenant_id,
            name=name,
            created_at=time.time(),
        )
        await self.store.add_api_key(record)
        return record

    async def authenticate(self, key: str) -> ApiKey:
        """The key's record, or `Unauthorized`. The lookup is by hash, so timing reveals nothing.

        Valid keys are remembered for `KEY_CACHE_SECONDS` (a busy client costs no database read
        per request); a revocation through this engine forgets them at once, one made by
        another process (PostgreSQL) is honoured within that time."""
        digest = crypto.hash_api_key(key)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        generation = self._keys_generation
        record = await self.store.find_api_key(digest)
        if record is None or record.revoked_at is not None:
            self._keys.pop(digest, None)
            raise errors.Unauthorized("invalid API key")
        if generation == self._keys_generation:  # no revocation raced the lookup
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            self._keys[digest] = (record, now + KEY_CACHE_SECONDS)
        return record

    # endpoints ---------------------------------------------------------------------------------
    async def create_endpoint(
        self,
        tenant_id: str,
        *,
        url: str,
        event_types: Sequence[str],
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: EndpointStatus = EndpointStatus.ACTIVE,
        filter: Mapping[str, Any] | None = None,
        rate_limit: Mapping[str, Any] | EndpointRateLimit | None = None,
        default_priority: int = 0,
        max_in_flight: int | None = None,
        ordering: EndpointOrdering | str = EndpointOrdering.NONE,
        disable_after: float | None = None,
        fallback_url: str | None = None,
        breaker: Mapping[str, Any] | BreakerSettings | None = None,
        fallback_after: float | None = None,
    ) -> tuple[Endpoint, str]:
        """Create an endpoint; returns it and its signing secret (shown once).

        `filter` (a JSON object) is stored as given and not evaluated yet; `rate_limit`
        (`{"per_second", "burst"}`) is enforced across every worker process; `max_in_flight`
        bounds its requests in flight per worker process (None: the worker's default).
        `default_priority` (MIN_PRIORITY..MAX_PRIORITY) is the priority of its deliveries when
        an event gives none. `breaker` (BreakerSettings fields; those left out take the
        defaults) sets its circuit breaker; `fallback_after` (seconds, needs a `fallback_url`)
        sends what its open breaker holds back to the fallback URL after that long.
        """
        check = _Checker()
        check.run(tenants.validate_tenant_id, tenant_id, "tenant_id")
        now = time.time()
        secret_value = secret if secret is not None else signing.generate_secret()
        endpoint = Endpoint(
            id=ids.new_id(ids.ENDPOINT, now=now),
            tenant_id=tenant_id,
            url=check.run(validate_url, url, "url"),
            event_types=check.patterns(event_types),
            secrets=(
                EndpointSecret(
                    Secret(check.run(signing.validate_new_secret, secret_value, "secret")), now
                ),
            ),
            retry_policy=check.retry_policy(retry_policy, max_attempts),
            timeout=check.timeout(timeout, self.settings),
            headers=check.headers(headers or {}),
            name=check.text(name, "name"),
            description=check.text(description, "description"),
            metadata=check.metadata(metadata or {}),
            filter=check.filter(filter),
            rate_limit=check.rate_limit(rate_limit),
            default_priority=check.priority(default_priority, "default_priority"),
            max_in_flight=check.max_in_flight(max_in_flight),
            ordering=check.ordering(ordering),
            disable_after=check.disable_after(disable_after),
            fallback_url=check.fallback_url(fallback_url),
            breaker=check.breaker(breaker, BreakerSettings()),
            fallback_after=check.fallback_after(fallback_after),
            status=status,
            created_at=now,
            updated_at=now,
        )
        check.needs_fallback_url(endpoint)
        check.raise_if_any("invalid endpoint")
        await self.store.create_endpoint(endpoint)
        return endpoint, secret_value

    async def get_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint:
        endpoint = await self.store.get_endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            raise errors.NotFound("endpoint", endpoint_id)
        return endpoint

    async def list_endpoints(
        self, tenant_id: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Endpoint]:
        return await self.store.list_endpoints(tenant_id, limit=_limit(limit), cursor=cursor)

    async def update_endpoint(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        *,
        url: str | _Unset = UNSET,
        event_types: Sequence[str] | _Unset = UNSET,
        headers: Mapping[str, str] | _Unset = UNSET,
        timeout: float | _Unset | None = UNSET,
        retry_policy: Mapping[str, Any] | _Unset | None = UNSET,
        max_attempts: int | _Unset | None = UNSET,
        name: str | _Unset | None = UNSET,
        description: str | _Unset | None = UNSET,
        metadata: Mapping[str, Any] | _Unset = UNSET,
        status: EndpointStatus | _Unset = UNSET,
        filter: Mapping[str, Any] | _Unset | None = UNSET,
        rate_limit: Mapping[str, Any] | EndpointRateLimit | _Unset | None = UNSET,
        default_priority: int | _Unset = UNSET,
        max_in_flight: int | _Unset | None = UNSET,
        ordering: EndpointOrdering | str | _Unset = UNSET,
        disable_after: float | _Unset | None = UNSET,
        fallback_url: str | _Unset | None = UNSET,
        breaker: Mapping[str, Any] | BreakerSettings | _Unset = UNSET,
        fallback_after: float | _Unset | None = UNSET,
    ) -> Endpoint:
        """Change the given fields. Pausing or disabling parks deliveries; activating resumes.
        `breaker` changes the settings it names and keeps the others."""

        def change(current: Endpoint) -> Endpoint | None:
            check = _Checker()
            changes: dict[str, Any] = {}
            if not isinstance(url, _Unset):
                changes["url"] = check.run(validate_url, url, "url")
            if not isinstance(event_types, _Unset):
                changes["event_types"] = check.patterns(event_types)
            if not isinstance(headers, _Unset):
                changes["headers"] = check.headers(headers)
            if not isinstance(timeout, _Unset):
                changes["timeout"] = check.timeout(timeout, self.settings)
            if not isinstance(retry_policy, _Unset) or not isinstance(max_attempts, _Unset):
                base = None if isinstance(retry_policy, _Unset) else retry_policy
                if base is None and isinstance(retry_policy, _Unset):
                    base = retry.policy_to_dict(current.retry_policy)
                count = None if isinstance(max_attempts, _Unset) else max_attempts
                changes["retry_policy"] = check.retry_policy(base, count)
            if not isinstance(name, _Unset):
                changes["name"] = check.text(name, "name")
            if not isinstance(description, _Unset):
                changes["description"] = check.text(description, "description")
            if not isinstance(metadata, _Unset):
                changes["metadata"] = check.metadata(metadata)
            if not isinstance(filter, _Unset):
                changes["filter"] = check.filter(filter)
            if not isinstance(rate_limit, _Unset):
                changes["rate_limit"] = check.rate_limit(rate_limit)
            if not isinstance(default_priority, _Unset):
                changes["default_priority"] = check.priority(default_priority, "default_priority")
            if not isinstance(max_in_flight, _Unset):
                changes["max_in_flight"] = check.max_in_flight(max_in_flight)
            if not isinstance(ordering, _Unset):
                changes["ordering"] = check.ordering(ordering)
            if not isinstance(disable_after, _Unset):
                changes["disable_after"] = check.disable_after(disable_after)
            if not isinstance(fallback_url, _Unset):
                changes["fallback_url"] = check.fallback_url(fallback_url)
            if not isinstance(breaker, _Unset):
                changes["breaker"] = check.breaker(breaker, current.breaker)
            if not isinstance(fallback_after, _Unset):
                changes["fallback_after"] = check.fallback_after(fallback_after)
            if "fallback_url" in changes or "fallback_after" in changes:
                check.needs_fallback_url(dataclasses.replace(current, **changes))
            if not isinstance(status, _Unset) and status is not current.status:
                changes["status"] = status
                changes["status_reason"] = (
                    None
                    if status is EndpointStatus.ACTIVE
                    else (
                        "paused by the API"
                        if status is EndpointStatus.PAUSED
                        else "disabled by the API"
                    )
                )
            check.raise_if_any("invalid endpoint")
            if not changes:
                return None
            now = _after(current.updated_at)
            changes["secrets"] = rotation.prune(current.secrets, now)  # drop expired secrets
            return dataclasses.replace(current, updated_at=now, **changes)

        current, updated = await self._change_endpoint(tenant_id, endpoint_id, change)
        if updated.status is EndpointStatus.ACTIVE and updated is not current:
            self.notify()
        return updated

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> None:
        if not await self.store.delete_endpoint(tenant_id, endpoint_id):
            raise errors.NotFound("endpoint", endpoint_id)

    # endpoint operations -----------------------------------------------------------------------
    async def pause_endpoint(self, tenant_id: str | None, endpoint_id: str) -> Endpoint:
        """Stop delivering: pending deliveries park until the endpoint resumes."""
        return await self.update_endpoint(tenant_id, endpoint_id, status=EndpointStatus.PAUSED)

    async def resume_endpoint(
        self, tenant_id: str | None, endpoint_id: str, *, discard_parked: bool = False
    ) -> Endpoint:
        """Deliver again (a paused or disabled endpoint); parked deliveries are due at once, or,
        with `discard_parked`, deleted first (with those queued behind them on a FIFO endpoint)
        and never sent."""
        if discard_parked:
            endpoint = await self.get_endpoint(tenant_id, endpoint_id)
            waiting = DeliveryFilter(
                statuses=[DeliveryStatus.PARKED, DeliveryStatus.QUEUED], endpoint_id=endpoint.id
            )
            await self.store.purge(tenant_id, waiting)
        return await self.update_endpoint(tenant_id, endpoint_id, status=EndpointStatus.ACTIVE)

    async def endpoint_health(self, tenant_id: str | None, endpoint_id: str) -> EndpointHealth:
        """The endpoint's status and its circuit breaker, back-off and rate-limit bucket now."""
        endpoint = await self.get_endpoint(tenant_id, endpoint_id)
        gate = (await self.store.endpoint_gates([endpoint.id])).get(endpoint.id) or Gate()
        now = time.time()
        state = gate.breaker
        successes, failures = state.counts(now, endpoint.breaker)
        tokens = admission.tokens_at(gate, endpoint.rate_limit, now)
        return EndpointHealth(
            endpoint_id=endpoint.id,
            status=endpoint.status,
            status_reason=endpoint.status_reason,
            last_success_at=endpoint.last_success_at,
            failing_since=endpoint.failing_since,
            breaker=state.state,
            breaker_until=None if state.state is BreakerState.CLOSED else state.until,
            cooldown=state.cooldown,
            tripped_at=state.tripped_at,
            successes=successes,
            failures=failures,
            settings=endpoint.breaker,
            history=state.history,
            backoff_until=gate.backoff_until if gate.backoff_until > now else None,
            tokens=tokens,
            checked_at=now,
        )

    async def rotate_secret(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        *,
        grace_period: float = rotation.DEFAULT_GRACE,
        secret: str | None = None,
    ) -> tuple[Endpoint, str, float]:
        """Sign with a new secret (given, or generated) from now on, and with the old ones too
        for `grace_period` seconds. Returns the endpoint, the new secret (to show once) and when
        the old secrets stop being used."""
        new = signing.generate_secret() if secret is None else signing.validate_new_secret(secret)

        def change(current: Endpoint) -> Endpoint:
            now = _after(current.updated_at)
            secrets = rotation.rotate(current.secrets, new, now=now, grace=grace_period)
            return dataclasses.replace(current, secrets=secrets, updated_at=now)

        _, updated = await self._change_endpoint(tenant_id, endpoint_id, change)
        return updated, new, updated.updated_at + grace_period

    async def _change_endpoint(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        change: Callable[[Endpoint], Endpoint | None],
    ) -> tuple[Endpoint, Endpoint]:
        """Read the endpoint, make `change` of it (None: nothing to change) and store that only
        if nothing changed the endpoint meanwhile (another request, the worker disabling it);
        else read it and make the change again. (the endpoint read, the endpoint stored)"""
        for _ in range(ENDPOINT_CHANGE_TRIES):
            current = await self.get_endpoint(tenant_id, endpoint_id)
            updated = change(current)
            if updated is None:
                return current, current
            try:
                await self.store.update_endpoint(updated, expected_updated_at=current.updated_at)
            except errors.Conflict:
                continue
            return current, updated
        raise errors.Conflict(
            f"endpoint {endpoint_id} kept being changed by other requests while this one was "
            "applied; try again"
        )

    async def send_test(
        self,
        tenant_id: str | None,
        endpoint_id: str,
        *,
        event_type: str = probe.DEFAULT_EVENT_TYPE,
        payload: Mapping[str, Any] | None = None,
    ) -> probe.ProbeResult:
        """Send one synthetic signed event to the endpoint now, whatever its status (see
        hookd.delivery.probe: nothing is stored). The endpoint is looked up first, so a foreign
        or unknown id is `NotFound` before anything is checked or sent."""
        endpoint = await self.get_endpoint(tenant_id, endpoint_id)
        event = self.make_event(
            endpoint.tenant_id, event_type, {"test": True} if payload is None else payload
        )
        return await probe.send_test(self._sender, endpoint, event.type, event.payload)

    async def get_stats(
        self, tenant_id: str | None, *, window: float, top: int = 10
    ) -> stats.Stats:
        """Deliveries created and attempts started in the last `window` seconds (hookd.stats)."""
        return await self._stats(tenant_id, None, window, top)

    async def get_endpoint_stats(
        self, tenant_id: str | None, endpoint_id: str, *, window: float
    ) -> stats.Stats:
        endpoint = await self.get_endpoint(tenant_id, endpoint_id)
        return await self._stats(tenant_id, endpoint.id, window, stats.MAX_TOP)

    async def _stats(
        self, tenant_id: str | None, endpoint_id: str | None, window: float, top: int
    ) -> stats.Stats:
        check = _Checker()
        if not 0 < window <= stats.MAX_WINDOW:
            check.add("window", f"must be more than 0 and at most {stats.MAX_WINDOW:.0f} seconds")
        if not 1 <= top <= stats.MAX_TOP:
            check.add("top", f"must be 1..{stats.MAX_TOP}")
        check.raise_if_any("invalid stats request")
        until = time.time()
        since = until - window
        counts = await self.store.count_deliveries(tenant_id, since=since, endpoint_id=endpoint_id)
        sample = await self.store.sample_attempts(
            tenant_id, since=since, endpoint_id=endpoint_id, limit=stats.SAMPLE
        )
        return stats.summarize(counts, sample, since=since, until=until, top=top)

    # events ------------------------------------------------------------------------------------
    def make_event(
        self,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        occurred_at: float | None = None,
        priority: int | None = None,
        now: float | None = None,
    ) -> Event:
        """Validate one event and build its record (no I/O; the type's schema is checked by
        `publish`). `now`: its creation time (default: the current time)."""
        check = _Checker()
        check.run(tenants.validate_tenant_id, tenant_id, "tenant_id")
        check.run(patterns.validate_event_type, event_type, "type")
        if not isinstance(payload, Mapping):
            check.add("payload", "must be a JSON object")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            check.add("idempotency_key", f"must be 1..{MAX_IDEMPOTENCY_KEY} characters")
        if occurred_at is not None and not 0 <= occurred_at < MAX_TIMESTAMP:
            # outside it the RFC 3339 `timestamp` of the body cannot be written
            check.add("occurred_at", "must be between 1970-01-01 and 9999-12-31 (UTC)")
        if priority is not None:
            check.priority(priority, "priority")
        check.raise_if_any("invalid event")
        try:
            body = orjson.dumps(payload)
        except TypeError as exc:
            raise errors.ValidationError(
                "invalid event", [Problem("payload", f"not JSON-serialisable: {exc}")]
            ) from None
        if len(body) > self.settings.max_payload_bytes:
            raise errors.PayloadTooLarge(len(body), self.settings.max_payload_bytes)
        if now is None:
            now = time.time()
        return Event(
            id=ids.new_id(ids.EVENT, now=now),
            tenant_id=tenant_id,
            type=event_type,
            payload=body,
            occurred_at=now if occurred_at is None else occurred_at,
            created_at=now,
            idempotency_key=idempotency_key,
            priority=priority,
        )

    async def publish(
        self,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        occurred_at: float | None = None,
        priority: int | None = None,
    ) -> PublishResult:
        """Persist the event and its deliveries in one transaction: on return, it is durable.

        The payload must match its type's schema (every violation is listed, at
        `payload/<JSON pointer>`); an archived type, or an undeclared one when
        `allow_unknown_event_types` is off, is refused. A repeat of an idempotency key within
        `idempotency_ttl` returns the first event (`duplicate=True`). `priority`
        (MIN_PRIORITY..MAX_PRIORITY, higher is sent first among due deliveries) overrides each
        endpoint's `default_priority`.
        """
        event = self.make_event(
            tenant_id,
            event_type,
            payload,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
            priority=priority,
        )
        problems = await self._type_problems(tenant_id, [(event_type, payload)], lambda _: "")
        if problems:
            raise errors.ValidationError("the event does not match its type", problems)
        (result,) = await self.store.publish([event], idempotent_since=self._idempotent_since())
        self.counters.event_published(0 if result.duplicate else 1)
        if result.deliveries and not result.duplicate:
            self.notify()
        return result

    async def publish_batch(
        self, tenant_id: str, items: Sequence[EventInput]
    ) -> list[PublishResult]:
        """Publish 1..`MAX_BATCH` events all or nothing: every item is validated first, and any
        problem refuses the whole batch (`ValidationError`, paths `events[i].…`; an oversized
        payload is one of those problems); otherwise one transaction stores them all."""
        tenants.validate_tenant_id(tenant_id)
        if not 1 <= len(items) <= MAX_BATCH:
            raise errors.ValidationError(
                "invalid batch", [Problem("events", f"must hold 1..{MAX_BATCH} events")]
            )
        events, typed, problems = self._batch_events(tenant_id, items, now=time.time())
        problems.extend(
            await self._type_problems(
                tenant_id,
                [(items[i].type, items[i].payload) for i in typed],
                lambda i: f"events[{typed[i]}].",
            )
        )
        if problems:
            count = len(problems)
            if count > MAX_BATCH_PROBLEMS:
                problems = problems[:MAX_BATCH_PROBLEMS]
                problems.append(Problem("events", f"{count - MAX_BATCH_PROBLEMS} more not listed"))
            raise errors.ValidationError(
                f"invalid batch: nothing was published ({count} problems)", problems
            )
        results = await self.store.publish(events, idempotent_since=self._idempotent_since())
        self.counters.event_published(sum(1 for r in results if not r.duplicate))
        if any(r.deliveries and not r.duplicate for r in results):
            self.notify()
        return results

    def _batch_events(
        self, tenant_id: str, items: Sequence[EventInput], *, now: float
    ) -> tuple[list[Event], list[int], list[Problem]]:
        """`make_event` for each item of a batch (the tenant already checked), at one creation
        time `now`: the events of the valid items, their indexes, and every problem of the
        others (paths `events[i].…`).

        An item that passes the checks as it is met (a type name already found valid in this
        batch, a JSON object payload within the size limit, the other fields in range) becomes
        its record here, its id one of a sorted run of the batch's ids (`ids.new_ids`); any
        other goes through `make_event` itself, which names its problems."""
        max_bytes = self.settings.max_payload_bytes
        dumps = orjson.dumps
        names: dict[str, bool] = {}  # type name -> valid
        events: list[Event] = []
        typed: list[int] = []
        problems: list[Problem] = []
        made = ids.new_ids(ids.EVENT, len(items), now=now)
        for index, item in enumerate(items):
            name, payload, key, occurred_at, priority = (
                item.type,
                item.payload,
                item.idempotency_key,
                item.occurred_at,
                item.priority,
            )
            valid = names.get(name) if isinstance(name, str) else False
            if valid is None:
                valid = names[name] = _valid_event_type(name)
            body = None
            if (
                valid
                and isinstance(payload, dict)
                and (key is None or (isinstance(key, str) and 0 < len(key) <= MAX_IDEMPOTENCY_KEY))
                and (occurred_at is None or 0 <= occurred_at < MAX_TIMESTAMP)
                and (
                    priority is None
                    or (type(priority) is int and MIN_PRIORITY <= priority <= MAX_PRIORITY)
                )
            ):
                try:
                    body = dumps(payload)
                except TypeError:  # not JSON: make_event says so
                    body = None
            if body is not None and len(body) <= max_bytes:
                event = Event(
                    made[index],
                    tenant_id,
                    name,
                    body,
                    now if occurred_at is None else occurred_at,
                    now,
                    key,
                    priority,
                )
            else:  # a problem somewhere, or a payload to look at closer: make_event says
                where = f"events[{index}]."
                try:
                    event = self.make_event(
                        tenant_id,
                        name,
                        payload,
                        idempotency_key=key,
                        occurred_at=occurred_at,
                        priority=priority,
                        now=now,
                    )
                except errors.ValidationError as exc:
                    problems.extend(
                        dataclasses.replace(p, path=where + p.path)
                        for p in exc.problems or [Problem("", exc.message)]
                    )
                    continue
                except errors.PayloadTooLarge as exc:
                    problems.append(Problem(where + "payload", str(exc)))
                    continue
                event = dataclasses.replace(event, id=made[index])
            events.append(event)
            typed.append(index)
        return events, typed, problems

    def _idempotent_since(self) -> float:
        return time.time() - self.settings.idempotency_ttl

    async def _type_problems(
        self,
        tenant_id: str,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        prefix: Callable[[int], str],
    ) -> list[Problem]:
        """What is wrong with publishing each (type, payload) of `items` under the tenant's
        event types; `prefix(i)` starts the paths of item i's problems (`""`, `events[3].`)."""
        if not items:
            return []
        declared = await self.store.event_types_by_name(tenant_id, {name for name, _ in items})
        problems: list[Problem] = []
        allow_unknown = self.settings.allow_unknown_event_types
        for index, (name, payload) in enumerate(items):
            event_type = declared.get(name)
            if event_type is None:
                if not allow_unknown:
                    problems.append(
                        Problem(
                            prefix(index) + "type",
                            f"unknown event type {name!r}: declare it first (POST /v1/event-types)",
                        )
                    )
                continue
            if event_type.archived:
                problems.append(Problem(prefix(index) + "type", f"event type {name!r} is archived"))
                continue
            if event_type.schema is not None:
                validator = self._validator(event_type)
                problems.extend(
                    Problem(f"{prefix(index)}payload{p.path}", p.message)
                    for p in schemas.violations(validator, payload)
                )
        return problems

    def _validator(self, event_type: EventType) -> Validator:
        """The compiled schema of an event type, cached by (tenant, name, updated_at)."""
        assert event_type.schema is not None
        key = (event_type.tenant_id, event_type.name, event_type.updated_at)
        validator = self._validators.get(key)
        if validator is None:
            validator = schemas.compile_schema(event_type.schema)
            self._validators[key] = validator
            if len(self._validators) > VALIDATOR_CACHE:
                self._validators.popitem(last=False)
        else:
            self._validators.move_to_end(key)
        return validator

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event:
        event = await self.store.get_event(tenant_id, event_id)
        if event is None:
            raise errors.NotFound("event", event_id)
        return event

    async def list_events(
        self,
        tenant_id: str | None,
        filter: EventFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Event]:
        """Events newest first; `tenant_id` None: every tenant's."""
        return await self.store.list_events(tenant_id, filter, limit=_limit(limit), cursor=cursor)

    # event types -------------------------------------------------------------------------------
    async def create_event_type(
        self,
        tenant_id: str,
        *,
        name: str,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
        archived: bool = False,
    ) -> EventType:
        """Declare an event type: its payload schema (JSON Schema draft 2020-12) and an example
        that must match it. `Conflict` when the tenant already has a type of that name."""
        check = _Checker()
        check.run(tenants.validate_tenant_id, tenant_id, "tenant_id")
        check.run(patterns.validate_event_type, name, "name")
        check.text(description, "description")
        check.schema_and_example(schema, example)
        check.raise_if_any("invalid event type")
        now = time.time()
        event_type = EventType(
            id=ids.new_id(ids.EVENT_TYPE, now=now),
            tenant_id=tenant_id,
            name=name,
            description=description,
            schema=schema,
            example=example,
            archived=archived,
            created_at=now,
            updated_at=now,
        )
        await self.store.create_event_type(event_type)
        return event_type

    async def get_event_type(self, tenant_id: str, name: str) -> EventType:
        """The tenant's event type of this name, archived or not."""
        event_type = await self.store.get_event_type(tenant_id, name)
        if event_type is None:
            raise errors.NotFound("event type", name)
        return event_type

    async def list_event_types(
        self,
        tenant_id: str | None,
        *,
        include_archived: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventType]:
        return await self.store.list_event_types(
            tenant_id, include_archived=include_archived, limit=_limit(limit), cursor=cursor
        )

    async def update_event_type(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str | _Unset | None = UNSET,
        schema: Mapping[str, Any] | _Unset | None = UNSET,
        example: Mapping[str, Any] | _Unset | None = UNSET,
        archived: bool | _Unset = UNSET,
    ) -> EventType:
        """Change the given fields (None clears description, schema, example). The example kept
        or given must match the schema kept or given."""
        current = await self.get_event_type(tenant_id, name)
        check = _Checker()
        changes: dict[str, Any] = {}
        if not isinstance(description, _Unset):
            changes["description"] = check.text(description, "description")
        if not isinstance(schema, _Unset):
            changes["schema"] = schema
        if not isinstance(example, _Unset):
            changes["example"] = example
        if not isinstance(archived, _Unset):
            changes["archived"] = archived
        if "schema" in changes or "example" in changes:
            check.schema_and_example(
                changes.get("schema", current.schema), changes.get("example", current.example)
            )
        check.raise_if_any("invalid event type")
        if all(getattr(current, field) == value for field, value in changes.items()):
            return current
        # strictly later than the last version, so a cached validator never outlives its schema
        now = max(time.time(), math.nextafter(current.updated_at, math.inf))
        updated = dataclasses.replace(current, updated_at=now, **changes)
        await self.store.update_event_type(updated)
        return updated

    async def archive_event_type(self, tenant_id: str, name: str) -> EventType:
        """Archive an event type (a soft delete; idempotent): it stays readable, publishing to it
        is refused, and `update_event_type(archived=False)` brings it back."""
        return await self.update_event_type(tenant_id, name, archived=True)

    # deliveries and dead letters ---------------------------------------------------------------
    async def list_deliveries(
        self,
        tenant_id: str | None,
        filter: DeliveryFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        return await self.store.list_deliveries(
            tenant_id, filter, limit=_limit(limit), cursor=cursor
        )

    async def get_delivery(
        self, tenant_id: str | None, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]]:
        delivery = await self.store.get_delivery(tenant_id, delivery_id)
        if delivery is None:
            raise errors.NotFound("delivery", delivery_id)
        return delivery, await self.store.list_attempts(tenant_id, delivery_id)

    async def retry_delivery(self, tenant_id: str | None, delivery_id: str) -> Delivery:
        """Send a delivery again now, with a fresh attempt budget, whatever its state."""
        delivery, _ = await self.get_delivery(tenant_id, delivery_id)
        if delivery.status is DeliveryStatus.SENDING:
            raise errors.Conflict(f"delivery {delivery_id} is being sent right now")
        await self.store.requeue(
            tenant_id, DeliveryFilter(), delivery_ids=[delivery_id], now=time.time()
        )
        self.notify()
        updated, _ = await self.get_delivery(tenant_id, delivery_id)
        return updated

    async def replay_dead_letters(
        self,
        tenant_id: str | None,
        *,
        delivery_ids: Sequence[str] | None = None,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Make dead letters (failed or dead deliveries) due again; returns how many."""
        count = await self.store.requeue(
            tenant_id,
            DeliveryFilter(
                statuses=DEAD_LETTER_STATUSES,
                endpoint_id=endpoint_id,
                event_type=event_type,
                created_after=since,
            ),
            delivery_ids=delivery_ids,
            now=time.time(),
            limit=limit,
        )
        if count:
            self.notify()
        return count

    async def purge_dead_letters(
        self,
        tenant_id: str | None,
        *,
        older_than: float,
        endpoint_id: str | None = None,
    ) -> int:
        """Delete dead letters that ended more than `older_than` seconds ago."""
        if older_than < 0:
            raise errors.ValidationError(
                "invalid purge", [Problem("older_than", "must not be negative")]
            )
        return await self.store.purge(
            tenant_id,
            DeliveryFilter(
                statuses=DEAD_LETTER_STATUSES,
                endpoint_id=endpoint_id,
                updated_before=time.time() - older_than,
            ),
        )


def default_store(settings: Settings, *, shared: bool = False, helper: bool = False) -> Store:
    """PostgreSQL when `database_url` is set, else SQLite at `db_path`. On SQLite, `shared`:
    this process owns the database and starts worker processes beside it; `helper`: this is
    one of them (hookd.delivery.processes)."""
    if settings.database_url is not None:
        from hookd.store.postgres import PostgresStore  # here: SQLite users never load asyncpg

        return PostgresStore.from_settings(settings)
    return SqliteStore(
        settings.db_path,
        settings.load_secret_box(),
        synchronous=settings.sqlite_synchronous,
        exclusive=not helper,
        shared=shared or helper,
    )


def _valid_event_type(name: str) -> bool:
    try:
        patterns.validate_event_type(name)
    except errors.ValidationError:
        return False
    return True


def _after(updated_at: float) -> float:
    """A change's time: now, or just after the last change if the clock has not moved past it
    (two changes never share an `updated_at`, which tells whether an endpoint changed)."""
    return max(time.time(), math.nextafter(updated_at, math.inf))


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise errors.ValidationError("invalid limit", [Problem("limit", f"must be 1..{MAX_PAGE}")])
    return limit


class _Checker:
    """Collects every problem with an input, so the caller hears of all of them at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def run(self, validate: Any, value: Any, path: str) -> Any:
        try:
            return validate(value)
        except errors.ValidationError as exc:
            if exc.problems:
                self.problems.extend(dataclasses.replace(p, path=path) for p in exc.problems)
            else:
                self.add(path, exc.message)
            return value

    def raise_if_any(self, message: str) -> None:
        if self.problems:
            raise errors.ValidationError(message, self.problems)

    def patterns(self, values: Sequence[str]) -> tuple[str, ...]:
        if isinstance(values, str) or not values:
            self.add("event_types", "must be a non-empty list of patterns")
            return ()
        if len(values) > MAX_PATTERNS:
            self.add("event_types", f"at most {MAX_PATTERNS} patterns")
        for i, value in enumerate(values):
            self.run(patterns.validate_pattern, value, f"event_types[{i}]")
        return tuple(dict.fromkeys(values))

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        if len(headers) > MAX_HEADERS:
            self.add("headers", f"at most {MAX_HEADERS} headers")
        seen: set[str] = set()
        for name, value in headers.items():
            path = f"headers.{name}"
            lower = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                self.add(path, "not a valid header name")
            elif lower in _RESERVED_HEADERS:
                self.add(path, "this header is set by hookd and cannot be overridden")
            elif lower in seen:
                self.add(path, "given twice (header names are case-insensitive)")
            seen.add(lower)
            if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
                self.add(path, f"the value must be a string of at most {MAX_HEADER_VALUE} chars")
            elif any(c in value for c in "\r\n\0"):
                self.add(path, "the value must not contain line breaks or NUL")
        return dict(headers)

    def timeout(self, value: float | None, settings: Settings) -> float:
        if value is None:
            return settings.default_timeout
        if not 0 < value <= settings.max_timeout:
            self.add("timeout", f"must be more than 0 and at most {settings.max_timeout:g} seconds")
        return float(value)

    def retry_policy(
        self, data: Mapping[str, Any] | None, max_attempts: int | None
    ) -> retry.RetryPolicy:
        policy: retry.RetryPolicy = retry.DEFAULT_POLICY
        if data is not None:
            try:
                policy = retry.policy_from_dict(data)
            except errors.ValidationError as exc:
                self.problems.extend(exc.problems or [Problem("retry_policy", exc.message)])
        if max_attempts is not None:
            try:
                policy = retry.with_max_attempts(policy, max_attempts)
            except ValueError as exc:
                self.add("max_attempts", str(exc))
        return policy

    def fallback_url(self, value: str | None) -> str | None:
        if value is None:
            return None
        return str(self.run(validate_url, value, "fallback_url"))

    def fallback_after(self, value: float | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add("fallback_after", "must be a number of seconds or null")
            return None
        if not 0 < value <= MAX_DISABLE_AFTER:
            self.add(
                "fallback_after", f"must be more than 0, at most {MAX_DISABLE_AFTER:g} seconds"
            )
        return float(value)

    def needs_fallback_url(self, endpoint: Endpoint) -> None:
        """`fallback_after` diverts to the fallback URL: there must be one."""
        if endpoint.fallback_after is not None and endpoint.fallback_url is None:
            self.add("fallback_after", "needs a fallback_url to send to")

    def breaker(
        self, value: Mapping[str, Any] | BreakerSettings | None, base: BreakerSettings
    ) -> BreakerSettings:
        """Circuit-breaker settings: the fields given, the others from `base`."""
        if value is None:
            return base
        if isinstance(value, BreakerSettings):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            self.add("breaker", "must be a JSON object of circuit breaker settings")
            return base
        odd = [
            key
            for key, item in value.items()
            if isinstance(item, float) and not math.isfinite(item)
        ]
        for key in odd:
            self.add(f"breaker.{key}", "must be a finite number")
        if odd:
            return base
        try:
            return BreakerSettings.from_dict(value, base=base)
        except errors.ValidationError as exc:
            self.problems.extend(exc.problems or [Problem("breaker", exc.message)])
            return base

    def disable_after(self, value: float | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add("disable_after", "must be a number of seconds or null")
            return None
        if not 0 < value <= MAX_DISABLE_AFTER:
            self.add("disable_after", f"must be more than 0, at most {MAX_DISABLE_AFTER:g} seconds")
        return float(value)

    def ordering(self, value: EndpointOrdering | str) -> EndpointOrdering:
        try:
            return EndpointOrdering(value)
        except ValueError:
            self.add("ordering", "must be 'none' or 'fifo'")
            return EndpointOrdering.NONE

    def priority(self, value: int, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, "must be an integer")
            return 0
        if not MIN_PRIORITY <= value <= MAX_PRIORITY:
            self.add(path, f"must be {MIN_PRIORITY}..{MAX_PRIORITY} (higher is sent first)")
        return value

    def max_in_flight(self, value: int | None) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add("max_in_flight", "must be an integer or null")
            return None
        if not 1 <= value <= MAX_IN_FLIGHT:
            self.add("max_in_flight", f"must be 1..{MAX_IN_FLIGHT}")
        return value

    def text(self, value: str | None, path: str) -> str | None:
        if value is not None and len(value) > MAX_TEXT:
            self.add(path, f"at most {MAX_TEXT} characters")
        return value

    def metadata(self, value: Mapping[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except TypeError:
            self.add("metadata", "must be a JSON object")
            return {}
        if size > MAX_METADATA_BYTES:
            self.add("metadata", f"at most {MAX_METADATA_BYTES} bytes of JSON")
        return dict(value)

    def filter(self, value: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.add("filter", "must be a JSON object or null")
            return None
        try:
            size = schemas.encoded_size(value)
        except (TypeError, ValueError) as exc:
            self.add("filter", f"must be JSON: {exc}")
            return None
        if size > MAX_FILTER_BYTES:
            self.add("filter", f"at most {MAX_FILTER_BYTES} bytes of JSON")
        return dict(value)

    def rate_limit(
        self, value: Mapping[str, Any] | EndpointRateLimit | None
    ) -> EndpointRateLimit | None:
        data: Mapping[str, Any]
        if value is None:
            return None
        if isinstance(value, EndpointRateLimit):
            data = {"per_second": value.per_second, "burst": value.burst}
        elif isinstance(value, Mapping):
            data = value
        else:
            self.add("rate_limit", 'must be {"per_second": number, "burst": integer} or null')
            return None
        unknown = sorted(set(data) - {"per_second", "burst"})
        for name in unknown:
            self.add(f"rate_limit.{name}", "is not a known field")
        per_second, burst = data.get("per_second"), data.get("burst")
        ok = True
        if (
            isinstance(per_second, bool)
            or not isinstance(per_second, int | float)
            or not 0 < per_second <= MAX_RATE
        ):
            self.add("rate_limit.per_second", f"must be a number more than 0, at most {MAX_RATE}")
            ok = False
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_RATE:
            self.add("rate_limit.burst", f"must be an integer 1..{MAX_RATE}")
            ok = False
        if not ok or unknown:
            return None
        assert isinstance(per_second, int | float) and isinstance(burst, int)
        return EndpointRateLimit(per_second=float(per_second), burst=burst)

    def schema_and_example(self, schema: object, example: object) -> None:
        """An event type's schema must be a usable JSON Schema, and its example a JSON object
        that matches it."""
        validator = None
        if schema is not None:
            problems = schemas.check_schema(schema)
            self.problems.extend(Problem("schema" + p.path, p.message) for p in problems)
            if not problems:
                assert isinstance(schema, Mapping)
                validator = schemas.compile_schema(schema)
        if example is None:
            return
        if not isinstance(example, Mapping):
            self.add("example", "must be a JSON object or null")
            return
        try:
            schemas.encoded_size(example)
        except (TypeError, ValueError) as exc:
            self.add("example", f"must be JSON: {exc}")
            return
        if validator is not None:
            self.problems.extend(
                Problem("example" + p.path, p.message)
                for p in schemas.violations(validator, example)
            )
