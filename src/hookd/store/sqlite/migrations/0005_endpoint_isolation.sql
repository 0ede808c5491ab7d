-- hookd schema, version 5: per-endpoint isolation (issue 5). An endpoint's concurrency limit,
-- and the state its rate limit and back-off share between workers: one row per endpoint,
-- written by one statement per claim batch (the grant of tokens) and by a 429/503 (back-off).
-- No foreign key: a row outliving its endpoint is harmless, and a grant never fails on a
-- deletion racing it.

ALTER TABLE endpoints ADD COLUMN max_in_flight INTEGER;   -- NULL: the worker's default

CREATE TABLE endpoint_throttle (
    endpoint_id   TEXT PRIMARY KEY,
    rate          REAL,                       -- tokens a second when last counted (NULL: none)
    burst         REAL,                       -- the bucket's size when last counted
    tokens        REAL NOT NULL,              -- left at updated_at
    granted       INTEGER NOT NULL DEFAULT 0, -- the last grant (what RETURNING reports)
    updated_at    REAL NOT NULL,
    backoff_until REAL NOT NULL DEFAULT 0     -- nothing is sent before this (a 429/503)
) WITHOUT ROWID;
