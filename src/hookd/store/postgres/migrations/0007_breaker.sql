-- hookd schema on PostgreSQL, version 7: the circuit breaker (issue 5). Each endpoint's shared
-- sending state moves from endpoint_throttle to endpoint_gates, which adds the breaker beside
-- the token bucket and the back-off. A claim batch's rows are locked (FOR UPDATE, in endpoint
-- order), decided on by hookd.policy.admission, and written back in one transaction, so every
-- worker process sees one bucket and one breaker per endpoint. The old rows are not carried
-- over: a bucket starts full again and a back-off is forgotten (the receiver repeats its 429).

ALTER TABLE endpoints ADD COLUMN breaker text;                  -- settings JSON; NULL: defaults
ALTER TABLE endpoints ADD COLUMN fallback_after double precision;

DROP TABLE endpoint_throttle;

CREATE TABLE endpoint_gates (
    endpoint_id   text PRIMARY KEY,
    tokens        double precision,                   -- left at updated_at; NULL: a full bucket
    updated_at    double precision NOT NULL,
    backoff_until double precision NOT NULL DEFAULT 0,  -- nothing is sent before this
    breaker_state text NOT NULL DEFAULT 'closed',
    breaker       text                                 -- hookd.policy.breaker state JSON; NULL: fresh
);

CREATE INDEX endpoint_gates_tripped ON endpoint_gates (breaker_state)
    WHERE breaker_state <> 'closed';
