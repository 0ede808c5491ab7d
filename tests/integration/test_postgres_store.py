"""What only the PostgreSQL adapter promises: migrations under a lock, encryption at rest, claims
that never overlap across processes and walk the due index, group commit, NOTIFY to other
processes, translated errors, and surviving lost connections. (The port's contract itself is
tests/integration/test_store_contract.py, which runs on PostgreSQL too.)

Each test gets a fresh schema on the test server (tests/support/postgres.py); several
`PostgresStore` objects on one schema stand for several hookd processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from test_store_contract import make_endpoint, make_event, result_for

from hookd import crypto
from hookd.domain import errors
from hookd.domain.models import DeliveryStatus, Endpoint, EndpointStatus
from hookd.store.postgres import PostgresStore
from hookd.store.postgres.store import Q, migrate
from hookd.store.sql import load_migrations
from support import postgres

EXPECTED_SCHEMA = Path(__file__).with_name("expected_schema_postgres.sql")


@pytest.fixture
def box() -> crypto.SecretBox:
    return crypto.SecretBox(crypto.generate_key())


@pytest.fixture
def make_store(
    postgres_schema: postgres.Schema, box: crypto.SecretBox
) -> Callable[..., PostgresStore]:
    """Stores on the test's schema: each one stands for one hookd process."""

    def make(**options: object) -> PostgresStore:
        return PostgresStore(
            postgres_schema.url,
            box,
            schema=postgres_schema.name,
            **options,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
async def store(make_store: Callable[..., PostgresStore]) -> AsyncIterator[PostgresStore]:
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


async def raw(schema: postgres.Schema) -> asyncpg.Connection:
    return await asyncpg.connect(schema.url, server_settings={"search_path": schema.name})


async def dump_schema(conn: asyncpg.Connection, schema: str) -> str:
    """Tables, columns, constraints and indexes of `schema`, in a stable text form."""
    lines: list[str] = []
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = $1 "
        "ORDER BY table_name, ordinal_position",
        schema,
    )
    table = None
    for c in columns:
        if c["table_name"] != table:
            table = c["table_name"]
            lines.append(f"-- table {table}")
        null = "" if c["is_nullable"] == "YES" else " NOT NULL"
        default = f" DEFAULT {c['column_default']}" if c["column_default"] else ""
        lines.append(f"{c['column_name']} {c['data_type']}{null}{default}")
    constraints = await conn.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE connamespace = $1::regnamespace ORDER BY 1, 2",
        schema,
    )
    lines += [f"-- constraint {c['tbl']}.{c['conname']}: {c['def']}" for c in constraints]
    indexes = await conn.fetch(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY tablename, indexname",
        schema,
    )
    lines += [f"{i['indexdef']};" for i in indexes]
    return "\n".join(lines).replace(f"{schema}.", "") + "\n"


async def test_fresh_migrate_produces_the_expected_schema(
    postgres_schema: postgres.Schema,
) -> None:
    conn = await raw(postgres_schema)
    try:
        latest = len(load_migrations("hookd.store.postgres.migrations"))
        assert await migrate(conn, postgres_schema.name) == latest
        assert await migrate(conn, postgres_schema.name) == latest  # idempotent
        schema = await dump_schema(conn, postgres_schema.name)
    finally:
        await conn.close()
    # A schema change needs a new migration and a reviewed snapshot: regenerate it with
    # HOOKD_WRITE_SCHEMA_SNAPSHOT=1 and read the diff.
    if os.environ.get("HOOKD_WRITE_SCHEMA_SNAPSHOT") == "1":
        EXPECTED_SCHEMA.write_text(schema)
    assert schema == EXPECTED_SCHEMA.read_text()


async def test_processes_starting_together_migrate_once(
    make_store: Callable[..., PostgresStore], postgres_schema: postgres.Schema
) -> None:
    stores = [make_store() for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))  # all race for the same fresh schema
    try:
        latest = len(load_migrations("hookd.store.postgres.migrations"))
        assert {await s.schema_version() for s in stores} == {latest}
        conn = await raw(postgres_schema)
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == latest
        finally:
            await conn.close()
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_secrets_and_headers_are_encrypted_at_rest(
    store: PostgresStore, make_store: Callable[..., PostgresStore], postgres_schema: postgres.Schema
) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    conn = await raw(postgres_schema)
    try:
        row = await conn.fetchrow("SELECT * FROM endpoints WHERE id = $1", endpoint.id)
    finally:
        await conn.close()
    assert row is not None
    stored = " ".join(str(v) for v in row.values())
    assert endpoint.secrets[0].value.reveal() not in stored
    assert "Bearer token" not in stored
    assert await store.get_endpoint(None, endpoint.id) == endpoint
    other_key = PostgresStore(
        postgres_schema.url, crypto.SecretBox(crypto.generate_key()), schema=postgres_schema.name
    )
    with pytest.raises(errors.ConfigError, match="HOOKD_SECRET_KEY"):
        await other_key.open()


async def with_history(
    store: PostgresStore,
    schema: postgres.Schema,
    count: int,
    *,
    status: str,
    lease_owner: str = "NULL",
) -> tuple[Endpoint, str, asyncpg.Connection]:
    """An endpoint, one event, and `count` deliveries of it straight into the table
    (`dlv_00000001`, …, due at `g`, their number; `status` and `lease_owner` are SQL
    expressions of `g`): the endpoint, the event's id, and a connection to the schema."""
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    (published,) = await store.publish([make_event()])
    conn = await raw(schema)
    await conn.execute(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, "
        "lease_owner, next_attempt_at, created_at, updated_at) "
        "SELECT 'dlv_' || lpad(g::text, 8, '0'), 'default', $1, $2, 'order.filled', "
        f"{status}, {lease_owner}, g, g, g FROM generate_series(1, $3) AS g",
        published.event.id,
        endpoint.id,
        count,
    )
    return endpoint, published.event.id, conn


async def test_the_claim_walks_the_due_index(
    store: PostgresStore, postgres_schema: postgres.Schema
) -> None:
    """With a long history and a backlog, the claim's plan reads the partial index in (priority,
    due) order: no scan of the table, no sort (so its cost follows the batch, not the backlog);
    and retries not yet due at a high priority are outside the index range, never read."""
    # 50,000 finished deliveries (history) and 5,000 due ones (backlog), all of one event
    endpoint, event_id, conn = await with_history(
        store,
        postgres_schema,
        55000,
        status="CASE WHEN g % 11 = 0 THEN 'pending' ELSE 'delivered' END",
    )
    try:
        # 20,000 retries at the highest priority, due only after `now`
        await conn.execute(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, "
            "priority, next_attempt_at, created_at, updated_at) "
            "SELECT 'dlv_r' || lpad(g::text, 8, '0'), 'default', $1, $2, 'order.filled', "
            "'pending', 10, 2e11 + g, g, g FROM generate_series(1, 20000) AS g",
            event_id,
            endpoint.id,
        )
        await conn.execute("ANALYZE deliveries")
        params = {"worker_id": "w", "lease_until": 1e12, "now": 1e11, "limit": 256}
        plans = {}
        for name in ("claim_due", "next_due_at"):
            query = Q[name]
            rows = await conn.fetch("EXPLAIN " + query.sql, *query.args(params))
            plans[name] = [r[0].strip().removeprefix("->  ") for r in rows]
            assert not any(line.startswith("Seq Scan on deliveries") for line in plans[name])
        # the rows to claim: the first due ones, locked as the due index yields them (no sort)
        claim = plans["claim_due"]
        lock = next(i for i, line in enumerate(claim) if line.startswith("LockRows"))
        assert claim[lock - 1].startswith("Limit"), claim
        assert claim[lock + 1].startswith("Index Scan using deliveries_due"), claim
        cond = claim[lock + 2]  # both columns bound: one range per priority level, up to now
        assert cond.startswith("Index Cond:") and "priority = ANY" in cond, claim
        assert "next_attempt_at <=" in cond, claim
        assert any("Index Only Scan using deliveries_due" in line for line in plans["next_due_at"])
    finally:
        await conn.close()


async def test_a_batch_of_results_is_recorded_by_primary_key_whatever_the_statistics(
    store: PostgresStore, postgres_schema: postgres.Schema
) -> None:
    """complete_deliveries with the worker's id unseen by ANALYZE (the planner then expects one
    row): as store.record runs it (nested loops off), the deliveries are found through the
    primary key and the batch is hashed, never a scan of the table with unnest() rescanned per
    row (35-70 ms for 256 rows); and the batch is recorded."""
    endpoint, _, conn = await with_history(
        store,
        postgres_schema,
        20000,
        status="CASE WHEN g % 2 = 0 THEN 'delivered' ELSE 'sending' END",
        lease_owner="CASE WHEN g % 2 = 0 THEN NULL ELSE 'w-old' END",
    )
    try:
        await conn.execute("ANALYZE deliveries")
        ids = [
            r[0]
            for r in await conn.fetch(
                "UPDATE deliveries SET lease_owner = 'w-new' WHERE id IN (SELECT id FROM "
                "deliveries WHERE status = 'sending' ORDER BY id DESC LIMIT 256) RETURNING id"
            )
        ]
        query = Q["complete_deliveries"]
        params = {
            "ids": ids,
            "statuses": ["delivered"] * len(ids),
            "next_attempt_at": [None] * len(ids),
            "status_codes": [204] * len(ids),
            "errors": [None] * len(ids),
            "to_fallback": [False] * len(ids),
            "now": 1.0,
            "worker_id": "w-new",
        }
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_nestloop = off")
            rows = await conn.fetch("EXPLAIN " + query.sql, *query.args(params))
        plan = [r[0].strip().removeprefix("->  ") for r in rows]
        assert not any(line.startswith("Seq Scan on deliveries") for line in plan), plan
        assert not any(line.startswith("Nested Loop") for line in plan), plan
        assert any("Index Scan using deliveries_pkey" in line for line in plan), plan
        assert any(line.startswith("Hash Join") for line in plan), plan
    finally:
        await conn.close()
    results = [result_for(i, endpoint.id, DeliveryStatus.DELIVERED) for i in ids]
    await store.record(worker_id="w-new", results=results, now=2.0)
    done = await store.get_delivery(None, ids[0])
    assert done is not None and done.status is DeliveryStatus.DELIVERED


async def test_concurrent_claims_from_many_processes_never_overlap(
    store: PostgresStore, make_store: Callable[..., PostgresStore]
) -> None:
    await store.create_endpoint(make_endpoint())
    published = await store.publish([make_event() for _ in range(2000)])
    workers = [make_store() for _ in range(4)]
    await asyncio.gather(*(w.open() for w in workers))
    now = time.time() + 1
    claims: dict[str, list[str]] = {f"w{i}": [] for i in range(len(workers))}

    async def drain(name: str, worker: PostgresStore) -> None:
        for _ in range(100):  # bounded: 2000 rows, batches of 37
            batch = await worker.claim(worker_id=name, limit=37, now=now, lease_seconds=60)
            if not batch:
                return
            claims[name].extend(c.id for c in batch)

    try:
        await asyncio.gather(*(drain(f"w{i}", w) for i, w in enumerate(workers)))
    finally:
        await asyncio.gather(*(w.close() for w in workers))
    every = [i for ids in claims.values() for i in ids]
    assert len(every) == len(set(every)) == len(published) == 2000
    assert all(claims.values()), "every process got some of the work"


async def test_concurrent_publishes_share_transactions(
    store: PostgresStore, postgres_schema: postgres.Schema
) -> None:
    """Group commit: 300 concurrent single-event publishes take far fewer transactions."""
    await store.create_endpoint(make_endpoint())
    results = await asyncio.gather(*(store.publish([make_event()]) for _ in range(300)))
    assert all(r[0].deliveries == 1 for r in results)
    conn = await raw(postgres_schema)
    try:
        # rows written by one transaction share its id (xmin)
        transactions = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM events")
    finally:
        await conn.close()
    assert transactions <= 300 // 5, f"{transactions} transactions for 300 publishes"


async def test_a_failing_publish_does_not_undo_the_others_in_its_batch(
    store: PostgresStore,
) -> None:
    await store.create_endpoint(make_endpoint())
    bad = dataclasses.replace(make_event(), type="order.\0filled")  # PostgreSQL refuses NUL
    outcomes = await asyncio.gather(
        *(store.publish([make_event()]) for _ in range(20)),
        store.publish([bad]),
        *(store.publish([make_event()]) for _ in range(20)),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], errors.StoreError)
    assert isinstance(failed[0].__cause__, asyncpg.PostgresError)
    assert sum(1 for o in outcomes if isinstance(o, list) and o[0].deliveries == 1) == 40


async def test_one_idempotency_key_stores_one_event_across_processes(
    store: PostgresStore, make_store: Callable[..., PostgresStore]
) -> None:
    await store.create_endpoint(make_endpoint())
    others = [make_store() for _ in range(3)]
    await asyncio.gather(*(o.open() for o in others))
    try:
        results = await asyncio.gather(
            *(s.publish([make_event(key="same")]) for s in [store, *others] for _ in range(10))
        )
    finally:
        await asyncio.gather(*(o.close() for o in others))
    firsts = {r[0].event.id for r in results}
    assert len(firsts) == 1
    assert sum(1 for r in results if not r[0].duplicate) == 1


async def test_publish_wakes_workers_in_other_processes(
    store: PostgresStore, make_store: Callable[..., PostgresStore]
) -> None:
    await store.create_endpoint(make_endpoint())
    woken = asyncio.Event()
    other = make_store()
    await other.open()
    try:
        unsubscribe = other.subscribe_wakeups(woken.set)
        await store.publish([make_event()])
        await asyncio.wait_for(woken.wait(), 5)
        unsubscribe()
    finally:
        await other.close()


async def test_endpoint_changes_reach_other_processes_caches(
    store: PostgresStore, make_store: Callable[..., PostgresStore]
) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    worker = make_store(endpoint_cache_ttl=3600.0)  # only the notification can refresh it
    await worker.open()
    try:
        assert (await worker.endpoints_by_id([endpoint.id]))[endpoint.id].status is (
            EndpointStatus.ACTIVE
        )
        await store.update_endpoint(dataclasses.replace(endpoint, status=EndpointStatus.PAUSED))
        deadline = time.monotonic() + 5
        while (await worker.endpoints_by_id([endpoint.id]))[endpoint.id].status is not (
            EndpointStatus.PAUSED
        ):
            assert time.monotonic() < deadline, "the change never reached the other cache"
            await asyncio.sleep(0.02)
        await store.delete_endpoint(None, endpoint.id)
        while await worker.endpoints_by_id([endpoint.id]):
            assert time.monotonic() < deadline, "the deletion never reached the other cache"
            await asyncio.sleep(0.02)
    finally:
        await worker.close()


async def test_cached_endpoints_expire_without_a_notification(
    store: PostgresStore, make_store: Callable[..., PostgresStore], postgres_schema: postgres.Schema
) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    worker = make_store(endpoint_cache_ttl=0.2)
    await worker.open()
    try:
        await worker.endpoints_by_id([endpoint.id])
        conn = await raw(postgres_schema)  # a change that sends no notification
        try:
            await conn.execute("UPDATE endpoints SET url = 'https://example.org/new'")
        finally:
            await conn.close()
        await asyncio.sleep(0.3)
        assert (await worker.endpoints_by_id([endpoint.id]))[endpoint.id].url == (
            "https://example.org/new"
        )
    finally:
        await worker.close()


async def test_an_unreachable_server_is_store_unavailable(box: crypto.SecretBox) -> None:
    port = postgres_free_port()
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", box)
    with pytest.raises(errors.StoreUnavailable) as info:
        await store.open()
    assert isinstance(info.value.__cause__, OSError)
    assert "postgres@127.0.0.1" in str(info.value)
    with pytest.raises(errors.StoreUnavailable):
        await store.ping()


def postgres_free_port() -> int:
    from support.server import free_port

    return free_port()


async def test_driver_errors_become_store_errors_with_their_cause(store: PostgresStore) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    with pytest.raises(errors.StoreError) as info:
        await store.create_endpoint(endpoint)
    assert not isinstance(info.value, errors.StoreUnavailable)
    assert isinstance(info.value.__cause__, asyncpg.UniqueViolationError)


async def test_a_response_with_nul_bytes_is_recorded(store: PostgresStore) -> None:
    endpoint = make_endpoint()
    await store.create_endpoint(endpoint)
    await store.publish([make_event()])
    (claimed,) = await store.claim(worker_id="w", limit=1, now=time.time() + 1, lease_seconds=30)
    result = result_for(claimed.id, endpoint.id, DeliveryStatus.DELIVERED)
    result = result._replace(attempt=result.attempt._replace(response_body="a\0b", error="x\0"))
    await store.record(worker_id="w", results=[result], now=time.time())
    (attempt,) = await store.list_attempts(None, claimed.id)
    assert attempt.response_body == "a\ufffdb"


async def test_the_store_survives_its_connections_being_killed(
    store: PostgresStore, postgres_schema: postgres.Schema
) -> None:
    """Every connection of this "process" is terminated by the server (as in a restart): the
    pool reconnects, the LISTEN connection comes back, nothing accepted is lost."""
    await store.create_endpoint(make_endpoint())
    before = await store.publish([make_event() for _ in range(10)])
    woken = asyncio.Event()
    store.subscribe_wakeups(woken.set)
    conn = await raw(postgres_schema)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name IN ($1, $2)",
            f"hookd/{postgres_schema.name}",
            f"hookd-listen/{postgres_schema.name}",
        )
    finally:
        await conn.close()
    assert killed >= 2  # the pool's connection and the listener
    after = None
    for _ in range(50):  # the first calls may meet a dead connection: StoreUnavailable
        try:
            after = await store.publish([make_event() for _ in range(10)])
            break
        except errors.StoreUnavailable:
            await asyncio.sleep(0.1)
    assert after is not None
    await store.ping()
    # the listener reconnected: it wakes us (after a reconnect, or for the publish itself)
    await asyncio.wait_for(woken.wait(), 10)
    claimed = await store.claim(worker_id="w", limit=100, now=time.time() + 1, lease_seconds=30)
    assert {c.event_id for c in claimed} == {r.event.id for r in before + after}


def test_settings_select_postgresql_and_keep_the_password_out_of_sight() -> None:
    from hookd.config import Settings
    from hookd.engine import default_store

    url = "postgresql://hookd:s3cret@db.example:5432/hookd"
    settings = Settings.from_env(
        {
            "HOOKD_DATABASE_URL": url,
            "HOOKD_DATABASE_SCHEMA": "tenant_a",
            "HOOKD_DATABASE_POOL_SIZE": "4",
            "HOOKD_SECRET_KEY": crypto.generate_key(),
        }
    )
    assert (settings.database_url, settings.database_schema) == (url, "tenant_a")
    assert settings.database_pool_size == 4
    assert "s3cret" not in repr(settings)
    assert (
        settings.database_label()
        == "postgresql://hookd:***@db.example:5432/hookd (schema tenant_a)"
    )
    store = default_store(settings)
    assert isinstance(store, PostgresStore) and store.schema == "tenant_a"
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOOKD_DATABASE_URL": "mysql://db/hookd"}, "must be a PostgreSQL URL"),
        (
            {"HOOKD_DATABASE_URL": postgres.DEFAULT_URL, "HOOKD_DATABASE_SCHEMA": "a-b"},
            "database schema",
        ),
        (
            {"HOOKD_DATABASE_URL": postgres.DEFAULT_URL, "HOOKD_DATABASE_POOL_SIZE": "0"},
            "HOOKD_DATABASE_POOL_SIZE",
        ),
    ],
)
def test_database_settings_are_checked(env: dict[str, str], message: str) -> None:
    from hookd.config import Settings

    with pytest.raises(errors.ConfigError, match=message):
        Settings.from_env(env)


def test_hookd_migrate_with_a_database_url(postgres_schema: postgres.Schema) -> None:
    import subprocess
    import sys

    env = {
        **os.environ,
        "HOOKD_DATABASE_SCHEMA": postgres_schema.name,
        "HOOKD_SECRET_KEY": crypto.generate_key(),
    }
    env.pop("HOOKD_DATABASE_URL", None)
    command = [sys.executable, "-m", "hookd", "migrate", "--database-url", postgres_schema.url]
    for _ in range(2):  # the second run finds nothing to do
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        latest = len(load_migrations("hookd.store.postgres.migrations"))
        assert f"schema version {latest}" in done.stdout
        assert f"(schema {postgres_schema.name})" in done.stdout


async def test_api_processes_starting_together_register_one_admin_key(
    postgres_schema: postgres.Schema,
) -> None:
    from hookd.config import Settings
    from hookd.domain.models import Secret
    from hookd.engine import Engine

    settings = Settings(
        database_url=postgres_schema.url,
        database_schema=postgres_schema.name,
        secret_key=Secret(crypto.generate_key()),
        api_key=Secret("hk_shared_admin_key_0123456789abcdefghij"),
    )
    engines = [Engine(settings, run_worker=False) for _ in range(4)]
    await asyncio.gather(*(e.open() for e in engines))
    try:
        await asyncio.gather(*(e.bootstrap_admin_key() for e in engines))
        assert len(await engines[0].store.list_api_keys(None)) == 1
    finally:
        await asyncio.gather(*(e.close() for e in engines))
