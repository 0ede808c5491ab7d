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

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import orjson

from hookd import crypto
from hookd.config import Settings
from hookd.delivery.sender import HttpSender, Sender
from hookd.delivery.ssrf import AddressPolicy, validate_url
from hookd.delivery.worker import Worker
from hookd.domain import errors, ids
from hookd.domain.errors import Problem
from hookd.domain.models import (
    DEAD_LETTER_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSecret,
    EndpointStatus,
    Event,
    PublishResult,
    Secret,
)
from hookd.policy import patterns, retry, signing
from hookd.store.port import ApiKey, DeliveryFilter, Page, Store
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
MAX_PAGE = 500
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
        self.store: Store = store or SqliteStore(
            settings.db_path, settings.load_secret_box(), synchronous=settings.sqlite_synchronous
        )
        self._sender = sender or HttpSender(
            AddressPolicy(settings.allow_private_networks),
            max_connections=settings.worker.concurrency,
            excerpt_bytes=settings.response_excerpt_bytes,
        )
        self.worker: Worker | None = (
            Worker(self.store, self._sender, settings) if run_worker else None
        )
        self.started_at = time.time()

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
        if self.worker is not None:
            await self.worker.start()

    async def close(self) -> None:
        try:
            if self.worker is not None:
                await self.worker.stop()
        finally:
            await self._sender.close()
            await self.store.close()

    async def not_ready_reason(self) -> str | None:
        """Why this engine cannot do its work now, or None when it can."""
        try:
            await self.store.ping()
        except errors.StoreError:
            return "the database does not answer"
        if self.worker is not None and not self.worker.alive:
            return "the delivery worker is not running"
        return None

    # API keys ----------------------------------------------------------------------------------
    async def create_api_key(
        self, tenant_id: str | None, *, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for one tenant (or an admin key when `tenant_id` is None); shown once."""
        key = crypto.generate_api_key()
        return await self._add_key(key, tenant_id=tenant_id, name=name), key

    async def bootstrap_admin_key(self) -> str | None:
        """Make sure an admin key exists. Returns a newly generated key (to show once), else None.

        `HOOKD_API_KEY`, when set, is registered as an admin key; otherwise a key is generated
        the first time the database has no admin key.
        """
        if self.settings.api_key is not None:
            key = self.settings.api_key.reveal()
            if await self.store.find_api_key(crypto.hash_api_key(key)) is None:
                await self._add_key(key, tenant_id=None, name="HOOKD_API_KEY")
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
        """The key's record, or `Unauthorized`. The lookup is by hash, so timing reveals nothing."""
        record = await self.store.find_api_key(crypto.hash_api_key(key))
        if record is None or record.revoked_at is not None:
            raise errors.Unauthorized("invalid API key")
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
    ) -> tuple[Endpoint, str]:
        """Create an endpoint; returns it and its signing secret (shown once)."""
        check = _Checker()
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
            status=status,
            created_at=now,
            updated_at=now,
        )
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
    ) -> Endpoint:
        """Change the given fields. Pausing or disabling parks deliveries; activating resumes."""
        current = await self.get_endpoint(tenant_id, endpoint_id)
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
            return current
        updated = dataclasses.replace(current, updated_at=time.time(), **changes)
        await self.store.update_endpoint(updated)
        if self.worker is not None and updated.status is EndpointStatus.ACTIVE:
            self.worker.notify()
        return updated

    async def delete_endpoint(self, tenant_id: str | None, endpoint_id: str) -> None:
        if not await self.store.delete_endpoint(tenant_id, endpoint_id):
            raise errors.NotFound("endpoint", endpoint_id)

    # events ------------------------------------------------------------------------------------
    def make_event(
        self,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        occurred_at: float | None = None,
    ) -> Event:
        """Validate one event and build its record (no I/O)."""
        check = _Checker()
        check.run(patterns.validate_event_type, event_type, "type")
        if not isinstance(payload, Mapping):
            check.add("payload", "must be a JSON object")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            check.add("idempotency_key", f"must be 1..{MAX_IDEMPOTENCY_KEY} characters")
        check.raise_if_any("invalid event")
        try:
            body = orjson.dumps(payload)
        except TypeError as exc:
            raise errors.ValidationError(
                "invalid event", [Problem("payload", f"not JSON-serialisable: {exc}")]
            ) from None
        if len(body) > self.settings.max_payload_bytes:
            raise errors.PayloadTooLarge(len(body), self.settings.max_payload_bytes)
        now = time.time()
        return Event(
            id=ids.new_id(ids.EVENT, now=now),
            tenant_id=tenant_id,
            type=event_type,
            payload=body,
            occurred_at=now if occurred_at is None else occurred_at,
            created_at=now,
            idempotency_key=idempotency_key,
        )

    async def publish(
        self,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        occurred_at: float | None = None,
    ) -> PublishResult:
        """Persist the event and its deliveries in one transaction: on return, it is durable."""
        event = self.make_event(
            tenant_id,
            event_type,
            payload,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )
        (result,) = await self.store.publish([event])
        if self.worker is not None and result.deliveries and not result.duplicate:
            self.worker.notify()
        return result

    async def get_event(self, tenant_id: str | None, event_id: str) -> Event:
        event = await self.store.get_event(tenant_id, event_id)
        if event is None:
            raise errors.NotFound("event", event_id)
        return event

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
        if self.worker is not None:
            self.worker.notify()
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
        if count and self.worker is not None:
            self.worker.notify()
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
