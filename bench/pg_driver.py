"""asyncpg vs psycopg 3 on hookd's PostgreSQL hot path (the measurement behind the driver choice).

    PYTHONPATH=src python bench/pg_driver.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                             [--rows 20000] [--batch 256] [--rounds 3]

Each driver, in its own throw-away schema, runs the same statements hookd's adapter runs:

- insert: deliveries inserted in batches of `--batch` (one `INSERT … SELECT FROM unnest(arrays)`
  per batch; psycopg also with `executemany`, which it pipelines, and with COPY);
- claim: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …` until the
  table is drained;
- record: one `UPDATE … FROM unnest(arrays)` plus one attempts insert per batch (one transaction);
- ping: `SELECT 1` round trips (the per-statement floor).

The drivers alternate within each round so that machine noise hits both alike; the figure is the
median of the rounds, and the ratio is psycopg / asyncpg (below 1: psycopg is slower).
Every loop is bounded by the row count. Results land in bench/results/pg-driver-<stamp>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

HERE = Path(__file__).resolve().parent

SCHEMA = """
CREATE TABLE deliveries (
    id text PRIMARY KEY, status text NOT NULL, next_attempt_at double precision,
    lease_owner text, attempts integer NOT NULL DEFAULT 0, endpoint_id text NOT NULL,
    event_id text NOT NULL, event_type text NOT NULL, updated_at double precision NOT NULL);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE TABLE attempts (
    id text PRIMARY KEY, delivery_id text NOT NULL, number integer NOT NULL,
    started_at double precision NOT NULL, status_code integer, error text,
    request_headers text NOT NULL)
"""

INSERT_UNNEST = """
INSERT INTO deliveries (id, status, next_attempt_at, endpoint_id, event_id, event_type, updated_at)
SELECT id, 'pending', $2, 'ep_1', id, 'order.filled', $2 FROM unnest($1::text[]) AS t(id)
"""
INSERT_ONE = """
INSERT INTO deliveries (id, status, next_attempt_at, endpoint_id, event_id, event_type, updated_at)
VALUES ($1, 'pending', $2, 'ep_1', $1, 'order.filled', $2)
"""
CLAIM = """
UPDATE deliveries SET status = 'sending', lease_owner = $1, next_attempt_at = $2 + 30,
    updated_at = $2
WHERE id IN (SELECT id FROM deliveries WHERE status IN ('pending', 'sending')
             AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING id, endpoint_id, event_id, event_type, attempts
"""
# record, shape 1: one UPDATE joined to unnest(arrays). Its plan depends on statistics: with the
# worker's lease_owner unseen by the last ANALYZE the planner expects one row and picks a nested
# loop over a scan (measured 60-220 ms per 256 rows on 20k rows, until plans go generic).
RECORD_JOIN = """
UPDATE deliveries AS d SET status = r.status, next_attempt_at = NULL, attempts = d.attempts + 1,
    lease_owner = NULL, updated_at = $4
FROM unnest($1::text[], $2::text[]) AS r(id, status)
WHERE d.id = r.id AND d.lease_owner = $3 AND d.status = 'sending'
"""
# record, shape 2: one primary-key UPDATE per row, sent as one pipelined executemany (one round
# trip): its plan is an index lookup whatever the statistics say.
RECORD_ONE = """
UPDATE deliveries SET status = $2, next_attempt_at = NULL, attempts = attempts + 1,
    lease_owner = NULL, updated_at = $4
WHERE id = $1 AND lease_owner = $3 AND status = 'sending'
"""
ATTEMPTS = """
INSERT INTO attempts (id, delivery_id, number, started_at, status_code, error, request_headers)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::float8[], $5::int[], $6::text[],
                     $7::text[])
"""
COPY_COLUMNS = [
    "id",
    "status",
    "next_attempt_at",
    "endpoint_id",
    "event_id",
    "event_type",
    "updated_at",
]
HEADERS = json.dumps({"webhook-id": "dlv_x", "webhook-signature": "v1," + "A" * 44})


def psycopg_sql(query: str) -> str:
    """asyncpg's `$n` placeholders as psycopg's named `%(pn)s` (same statement, same plan)."""
    out = query
    for n in range(9, 0, -1):
        out = out.replace(f"${n}", f"%(p{n})s")
    return out


def params(*values: Any) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(values, start=1)}


class Asyncpg:
    name = "asyncpg"

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema

    async def __aenter__(self) -> Asyncpg:
        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        await self.conn.execute(f"CREATE SCHEMA {self.schema}")
        await self.conn.execute(f"SET search_path TO {self.schema}")
        await self.conn.execute(SCHEMA)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        await self.conn.close()

    async def reset(self) -> None:
        await self.conn.execute("TRUNCATE deliveries, attempts")

    async def insert_unnest(self, ids: list[str], now: float) -> None:
        await self.conn.execute(INSERT_UNNEST, ids, now)

    async def insert_many(self, ids: list[str], now: float) -> None:
        await self.conn.executemany(INSERT_ONE, [(i, now) for i in ids])

    async def insert_copy(self, ids: list[str], now: float) -> None:
        await self.conn.copy_records_to_table(
            "deliveries",
            records=[(i, "pending", now, "ep_1", i, "order.filled", now) for i in ids],
            columns=COPY_COLUMNS,
        )

    async def claim(self, worker: str, now: float, limit: int) -> list[str]:
        rows = await self.conn.fetch(CLAIM, worker, now, limit)
        return [r["id"] for r in rows]

    async def record(self, worker: str, ids: list[str], now: float, *, join: bool) -> None:
        n = len(ids)
        async with self.conn.transaction():
            if join:
                await self.conn.execute(RECORD_JOIN, ids, ["delivered"] * n, worker, now)
            else:
                await self.conn.executemany(
                    RECORD_ONE, [(i, "delivered", worker, now) for i in ids]
                )
            await self.conn.execute(
                ATTEMPTS,
                ["att_" + i for i in ids],
                ids,
                [1] * n,
                [now] * n,
                [200] * n,
                [None] * n,
                [HEADERS] * n,
            )

    async def ping(self) -> None:
        await self.conn.fetchval("SELECT 1")


class Psycopg:
    name = "psycopg"

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema

    async def __aenter__(self) -> Psycopg:
        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")  # type: ignore[arg-type]
        await self.conn.execute(f"CREATE SCHEMA {self.schema}")  # type: ignore[arg-type]
        await self.conn.execute(f"SET search_path TO {self.schema}")  # type: ignore[arg-type]
        await self.conn.execute(SCHEMA)  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")  # type: ignore[arg-type]
        await self.conn.close()

    async def reset(self) -> None:
        await self.conn.execute("TRUNCATE deliveries, attempts")

    async def insert_unnest(self, ids: list[str], now: float) -> None:
        await self.conn.execute(psycopg_sql(INSERT_UNNEST), params(ids, now))  # type: ignore[arg-type]

    async def insert_many(self, ids: list[str], now: float) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(psycopg_sql(INSERT_ONE), [params(i, now) for i in ids])  # type: ignore[arg-type]

    async def insert_copy(self, ids: list[str], now: float) -> None:
        async with (
            self.conn.cursor() as cur,
            cur.copy(
                f"COPY deliveries ({', '.join(COPY_COLUMNS)}) FROM STDIN"  # type: ignore[arg-type]
            ) as copy,
        ):
            for i in ids:
                await copy.write_row((i, "pending", now, "ep_1", i, "order.filled", now))

    async def claim(self, worker: str, now: float, limit: int) -> list[str]:
        cur = await self.conn.execute(psycopg_sql(CLAIM), params(worker, now, limit))  # type: ignore[arg-type]
        return [r[0] for r in await cur.fetchall()]

    async def record(self, worker: str, ids: list[str], now: float, *, join: bool) -> None:
        n = len(ids)
        async with self.conn.transaction():
            if join:
                await self.conn.execute(
                    psycopg_sql(RECORD_JOIN),  # type: ignore[arg-type]
                    params(ids, ["delivered"] * n, worker, now),
                )
            else:
                async with self.conn.cursor() as cur:
                    await cur.executemany(
                        psycopg_sql(RECORD_ONE),  # type: ignore[arg-type]
                        [params(i, "delivered", worker, now) for i in ids],
                    )
            await self.conn.execute(
                psycopg_sql(ATTEMPTS),  # type: ignore[arg-type]
                params(
                    ["att_" + i for i in ids],
                    ids,
                    [1] * n,
                    [now] * n,
                    [200] * n,
                    [None] * n,
                    [HEADERS] * n,
                ),
            )

    async def ping(self) -> None:
        await self.conn.execute("SELECT 1")


async def timed(fn: Callable[[], Awaitable[int]]) -> float:
    """Rows per second of `fn` (which returns how many rows it handled)."""
    started = time.perf_counter()
    rows = await fn()
    return rows / (time.perf_counter() - started)


async def measure(driver: Any, rows: int, batch: int) -> dict[str, float]:
    out: dict[str, float] = {}
    now = time.time()
    batches = [[f"dlv_{b:06d}_{i:04d}" for i in range(batch)] for b in range(max(1, rows // batch))]
    total = sum(len(b) for b in batches)

    async def insert_with(method: Callable[[list[str], float], Awaitable[None]]) -> int:
        await driver.reset()
        for ids in batches:
            await method(ids, now)
        return total

    out["insert executemany (rows/s)"] = await timed(lambda: insert_with(driver.insert_many))
    out["insert COPY (rows/s)"] = await timed(lambda: insert_with(driver.insert_copy))
    out["insert unnest (rows/s)"] = await timed(lambda: insert_with(driver.insert_unnest))
    for join in (False, True):
        if join:  # a fresh table for the second shape
            await insert_with(driver.insert_unnest)
        await driver.conn.execute("ANALYZE deliveries")  # as autovacuum would: before the claims
        claimed: list[list[str]] = []

        async def claim_all(claimed: list[list[str]] = claimed) -> int:
            done = 0
            for _ in range(len(batches) + 1):  # bounded: one more than needed to see it empty
                got = await driver.claim("w1", now + 1, batch)
                if not got:
                    break
                claimed.append(got)
                done += len(got)
            return done

        rate = await timed(claim_all)
        if not join:
            out["claim (rows/s)"] = rate

        async def record_all(join: bool = join, claimed: list[list[str]] = claimed) -> int:
            for ids in claimed:
                await driver.record("w1", ids, now + 2, join=join)
            return sum(len(ids) for ids in claimed)

        shape = "UPDATE … FROM unnest" if join else "pipelined executemany"
        out[f"record, {shape} (rows/s)"] = await timed(record_all)

    async def pings() -> int:
        for _ in range(2000):
            await driver.ping()
        return 2000

    out["SELECT 1 (round trips/s)"] = await timed(pings)
    return out


async def main(args: argparse.Namespace) -> int:
    runs: dict[str, list[dict[str, float]]] = {"asyncpg": [], "psycopg": []}
    for rnd in range(args.rounds):
        order = [Asyncpg, Psycopg] if rnd % 2 == 0 else [Psycopg, Asyncpg]
        for kind in order:
            async with kind(args.url, f"bench_driver_{kind.name}") as driver:
                result = await measure(driver, args.rows, args.batch)
            runs[kind.name].append(result)
            print(f"round {rnd + 1} {kind.name}: {result}", file=sys.stderr)
    figures = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for name, results in runs.items()
    }
    lines = [
        f"# asyncpg {asyncpg.__version__} vs psycopg {psycopg.__version__} — "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "",
        f"`python bench/pg_driver.py --rows {args.rows} --batch {args.batch} "
        f"--rounds {args.rounds}` (median of the rounds)",
        "",
        "| operation | asyncpg | psycopg | psycopg / asyncpg |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, value in figures["asyncpg"].items():
        other = figures["psycopg"][key]
        lines.append(f"| {key} | {value:,.0f} | {other:,.0f} | {other / value:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"pg-driver-{stamp}.json").write_text(
        json.dumps({"args": vars(args), "runs": runs, "median": figures}, indent=2) + "\n"
    )
    (out / f"pg-driver-{stamp}.md").write_text(text)
    (out / "latest-pg-driver.md").write_text(text)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
