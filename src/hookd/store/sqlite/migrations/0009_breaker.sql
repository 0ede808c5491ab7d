-- hookd schema, version 9: the circuit breaker (issue 5). Each endpoint's shared sending state
-- moves from endpoint_throttle to endpoint_gates, which adds the breaker beside the token bucket
-- and the back-off; the worker loads a claim batch's rows, decides with hookd.policy.admission
-- and writes back what changed, all in the one writer. The old rows are not carried over: a
-- bucket starts full again and a back-off is forgotten (the receiver repeats its 429).

ALTER TABLE endpoints ADD COLUMN breaker TEXT;          -- its settings as JSON; NULL: defaults
ALTER TABLE endpoints ADD COLUMN fallback_after REAL;   -- breaker open this long: to fallback_url

DROP TABLE endpoint_throttle;

CREATE TABLE endpoint_gates (
    endpoint_id   TEXT PRIMARY KEY,
    tokens        REAL,                       -- left at updated_at; NULL: a full bucket
    updated_at    REAL NOT NULL,
    backoff_until REAL NOT NULL DEFAULT 0,    -- nothing is sent before this (a 429/503)
    breaker_state TEXT NOT NULL DEFAULT 'closed',
    breaker       TEXT                        -- hookd.policy.breaker state; NULL: a fresh one
) WITHOUT ROWID;

CREATE INDEX endpoint_gates_tripped ON endpoint_gates (breaker_state)
    WHERE breaker_state <> 'closed';
