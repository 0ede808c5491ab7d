"""The SQLite worker statements one by one: µs per row of each, against alternatives, alternated.

    PYTHONPATH=src python bench/sqlite_statements.py            # 30,000 deliveries, 60 rounds
    PYTHONPATH=src python bench/sqlite_statements.py --quick    # 5,000 deliveries, 10 rounds

A claim and a record of results are a handful of statements each, run by the writer thread; with
several worker processes only one of them writes at a time, so their cost bounds the throughput
of them all (bench/README.md). This measures each statement alone, on a database filled through
`SqliteStore.publish` (one endpoint, 1 KB payloads), batches of 256 rows as the worker sends
them, each inside a transaction rolled back afterwards (so every round sees the same rows):

- `complete_deliveries` and `claim_mark` with deliveries_by_endpoint as it is (migration 11:
  delivered deliveries left out), as it was (migration 10: every delivery) and absent (a floor);
- the claim's event bodies: payloads joined by 0x1F (now) against one JSON array of them all;
- the attempts' insert that checks for their delivery itself (now) against a query first.

Variants run in a random order in every round; the figures are totals over all rounds, the
baseline being the first variant of each group (measured in the same run). Bounded: `--rounds`
rounds of batches of 256; nothing leaves the machine (no network at all).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import orjson  # noqa: E402

import e2e  # noqa: E402
from hookd import crypto  # noqa: E402
from hookd.domain import ids  # noqa: E402
from hookd.domain.models import DEFAULT_TENANT  # noqa: E402
from hookd.engine import Engine  # noqa: E402
from hookd.store import codec  # noqa: E402
from hookd.store.sqlite.store import Q, _insert_rows  # noqa: E402

BATCH = 256
BY_ENDPOINT = "(endpoint_id, (CASE status WHEN 'sending' THEN 'pending' ELSE status END))"
INDEX_VARIANTS = {
    "deliveries_by_endpoint without delivered (migration 11)": "",
    "deliveries_by_endpoint of every delivery (migration 10)": (
        f"DROP INDEX deliveries_by_endpoint; CREATE INDEX deliveries_by_endpoint "
        f"ON deliveries {BY_ENDPOINT};"
    ),
    "no deliveries_by_endpoint (a floor)": "DROP INDEX deliveries_by_endpoint;",
}
OLD_BODIES = (
    "SELECT json_group_array(json_array(id, type, occurred_at, CAST(payload AS TEXT))) "
    "FROM events WHERE id IN (SELECT value FROM json_each(:ids))"
)
OLD_EXISTING = (
    "SELECT json_group_array(id) FROM deliveries WHERE id IN (SELECT value FROM json_each(:ids))"
)
OLD_INSERT_ATTEMPT = (
    "INSERT INTO attempts (id, delivery_id, endpoint_id, number, started_at, duration_ms, "
    "outcome, status_code, error, request_headers, response_headers, response_body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
HEADERS = codec.dumps(
    {
        "content-type": "application/json",
        "user-agent": "hookd",
        "webhook-id": "dlv_01JAAAAAAAAAAAAAAAAAAAAAAA",
        "webhook-timestamp": "1733332800",
        "webhook-signature": "<redacted>",
    }
)


async def fill(db: Path, deliveries: int) -> None:
    settings = e2e._settings(db, crypto.generate_key(), 256, BATCH, "NORMAL")
    async with Engine(settings, run_worker=False) as engine:
        await engine.create_endpoint(
            DEFAULT_TENANT, url="http://127.0.0.1:9/", event_types=["order.*"]
        )
        for at in range(0, deliveries, 500):
            events = [
                engine.make_event(DEFAULT_TENANT, "order.filled", e2e.make_payload(i, 1024))
                for i in range(at, min(at + 500, deliveries))
            ]
            await engine.store.publish(events)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


Run = Callable[[sqlite3.Connection, list[Any]], Any]


def timed(conn: sqlite3.Connection, run: Run, batch: list[Any]) -> float:
    conn.execute("BEGIN")
    try:
        started = time.perf_counter()
        run(conn, batch)
        return time.perf_counter() - started
    finally:
        conn.execute("ROLLBACK")


def rounds(
    groups: dict[str, tuple[sqlite3.Connection, Run]], pick: Callable[[], list[Any]], count: int
) -> dict[str, float]:
    """µs per row of each variant over `count` rounds, in a random order in every round."""
    totals = dict.fromkeys(groups, 0.0)
    for _ in range(count):
        batch = pick()
        for name in random.sample(list(groups), len(groups)):
            conn, run = groups[name]
            totals[name] += timed(conn, run, batch)
    return {name: total / (count * BATCH) * 1e6 for name, total in totals.items()}


def complete(conn: sqlite3.Connection, batch: list[Any]) -> None:
    rows = codec.dumps([[d, "delivered", None, 204, None, False] for d, _, _ in batch])
    params = {"rows": rows, "now": time.time(), "worker_id": "w"}
    assert conn.execute(Q["complete_deliveries"], params).rowcount == len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.rounds = 5_000, 10
    work = Path(tempfile.mkdtemp(prefix="hookd-statements-"))
    try:
        report(work, args.deliveries, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(work: Path, deliveries: int, count: int) -> None:
    base = work / "base.db"
    asyncio.run(fill(base, deliveries))
    rows = connect(base).execute("SELECT id, endpoint_id, event_id FROM deliveries").fetchall()

    def pick() -> list[Any]:
        at = random.randrange(0, len(rows) - BATCH)
        return rows[at : at + BATCH]

    # 1. the statements that move deliveries, on each variant of deliveries_by_endpoint
    leased: dict[str, sqlite3.Connection] = {}
    pending: dict[str, sqlite3.Connection] = {}
    for number, (name, ddl) in enumerate(INDEX_VARIANTS.items()):
        for kind, into in (("leased", leased), ("pending", pending)):
            path = work / f"v{number}-{kind}.db"
            shutil.copy(base, path)
            conn = connect(path)
            conn.executescript(ddl)
            if kind == "leased":  # as a worker holds them: sending, leased to "w"
                conn.execute("UPDATE deliveries SET status = 'sending', lease_owner = 'w'")
            into[name] = conn

    def mark(conn: sqlite3.Connection, batch: list[Any]) -> None:
        now = time.time()
        params = {"worker_id": "w", "lease_until": now + 60, "now": now}
        ids_json = codec.dumps([d for d, _, _ in batch])
        assert conn.execute(Q["claim_mark"], {**params, "ids": ids_json}).rowcount == len(batch)

    table: list[tuple[str, str, float, float]] = []

    def compare(statement: str, groups: dict[str, tuple[sqlite3.Connection, Run]]) -> None:
        figures = rounds(groups, pick, count)
        first = next(iter(figures.values()))
        table.extend((statement, n, v, v / first) for n, v in figures.items())

    compare("complete_deliveries (record)", {n: (c, complete) for n, c in leased.items()})
    compare("claim_mark (claim)", {n: (c, mark) for n, c in pending.items()})

    # 2. the claim's event bodies
    conn = connect(base)

    def joined(conn: sqlite3.Connection, batch: list[Any]) -> None:
        params = {"ids": codec.dumps([e for _, _, e in batch])}
        heads, payloads = conn.execute(Q["events_for_bodies"], params).fetchone()
        events = orjson.loads(heads)
        for event, payload in zip(events, payloads.split(b"\x1f"), strict=True):
            codec.wire_body(event[1], event[2], payload)

    def quoted(conn: sqlite3.Connection, batch: list[Any]) -> None:
        params = {"ids": codec.dumps([e for _, _, e in batch])}
        for event in orjson.loads(conn.execute(OLD_BODIES, params).fetchone()[0]):
            codec.wire_body(event[1], event[2], event[3].encode())

    compare(
        "event bodies (claim)",
        {"payloads joined by 0x1F (now)": (conn, joined), "one JSON array": (conn, quoted)},
    )

    # 3. the attempts' insert
    def attempts(batch: list[Any]) -> list[tuple[Any, ...]]:
        now = time.time()
        return [
            (ids.new_id(ids.ATTEMPT), d, ep, 1, now, 1.2, "success", 204, None, HEADERS, "{}", None)
            for d, ep, _ in batch
        ]

    def guarded(conn: sqlite3.Connection, batch: list[Any]) -> None:
        _insert_rows(conn, Q["insert_attempt"], attempts(batch))

    def query_first(conn: sqlite3.Connection, batch: list[Any]) -> None:
        made = attempts(batch)
        found = conn.execute(OLD_EXISTING, {"ids": codec.dumps([a[1] for a in made])})
        live = set(orjson.loads(found.fetchone()[0]))
        _insert_rows(conn, OLD_INSERT_ATTEMPT, [a for a in made if a[1] in live])

    compare(
        "attempts insert (record)",
        {"the insert checks (now)": (conn, guarded), "a query first": (conn, query_first)},
    )

    print(
        f"\n{deliveries:,} deliveries, {count} rounds of {BATCH} rows, SQLite "
        f"{sqlite3.sqlite_version}\n"
    )
    print("| statement | variant | µs per row | ratio to the first |")
    print("|---|---|---:|---:|")
    for statement, name, value, ratio in table:
        print(f"| {statement} | {name} | {value:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
