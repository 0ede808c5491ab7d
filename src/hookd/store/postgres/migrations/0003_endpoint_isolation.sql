-- hookd schema on PostgreSQL, version 3: per-endpoint isolation (issue 5). An endpoint's
-- concurrency limit, and the state its rate limit and back-off share between worker processes:
-- one row per endpoint, written by one statement per claim batch (the grant of tokens, an
-- atomic upsert) and by a 429/503 (back-off). No foreign key: a row outliving its endpoint is
-- harmless, and a grant never fails on a deletion racing it.

ALTER TABLE endpoints ADD COLUMN max_in_flight integer;   -- NULL: the worker's default

CREATE TABLE endpoint_throttle (
    endpoint_id   text PRIMARY KEY,
    rate          double precision,               -- tokens a second when last counted
    burst         double precision,               -- the bucket's size when last counted
    tokens        double precision NOT NULL,      -- left at updated_at
    granted       integer NOT NULL DEFAULT 0,     -- the last grant (what RETURNING reports)
    updated_at    double precision NOT NULL,
    backoff_until double precision NOT NULL DEFAULT 0  -- nothing is sent before this
);
