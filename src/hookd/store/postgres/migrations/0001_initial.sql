-- hookd schema on PostgreSQL, version 1. The same tables as the SQLite adapter's: times are Unix
-- seconds (double precision), JSON columns hold text (the shared codec reads and writes them;
-- text keeps "\u0000" escapes that jsonb would refuse), event payloads are bytes as sent.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text,                            -- NULL: admin key
    name        text,
    prefix      text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    created_at  double precision NOT NULL,
    revoked_at  double precision
);

CREATE TABLE endpoints (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL,
    url           text NOT NULL,
    name          text,
    description   text,
    event_types   text NOT NULL,                 -- JSON array of patterns
    secrets       text NOT NULL,                 -- JSON array of {v: ciphertext, c, e}
    headers       text NOT NULL,                 -- ciphertext of a JSON object
    timeout       double precision NOT NULL,
    retry_policy  text NOT NULL,                 -- JSON
    status        text NOT NULL,
    status_reason text,
    metadata      text NOT NULL,                 -- JSON object
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL,
    filter        text,                          -- JSON object, stored as given
    rate_limit    text                           -- JSON {"per_second", "burst"}
);

CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, id);

CREATE TABLE event_types (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    description text,
    schema      text,                            -- JSON Schema (draft 2020-12); NULL: any object
    example     text,                            -- JSON object
    archived    boolean NOT NULL DEFAULT false,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL
);

CREATE UNIQUE INDEX event_types_by_name ON event_types (tenant_id, name);
CREATE INDEX event_types_by_tenant ON event_types (tenant_id, id);

CREATE TABLE events (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL,
    type            text NOT NULL,
    payload         bytea NOT NULL,              -- JSON object, bytes as sent in `data`
    occurred_at     double precision NOT NULL,
    created_at      double precision NOT NULL,
    idempotency_key text
);

CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_tenant_type ON events (tenant_id, type, id);
-- An idempotency key is remembered for a window (HOOKD_IDEMPOTENCY_TTL), after which the same
-- key may name a new event: not unique; publishers of one key serialise on an advisory lock.
CREATE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key, created_at)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    status           text NOT NULL,
    priority         integer NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    total_attempts   integer NOT NULL DEFAULT 0,
    next_attempt_at  double precision,           -- due time; while sending, the lease's end
    lease_owner      text,
    last_status_code integer,
    last_error       text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL
);

-- The claim walks this index in due order; only claimable rows are in it, so its size follows
-- the due backlog, not the history (delivered, failed, dead and parked rows stay out).
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
-- stats over a time window: range scans, not table scans
CREATE INDEX deliveries_by_created ON deliveries (created_at);
CREATE INDEX deliveries_by_endpoint_created ON deliveries (endpoint_id, created_at);

CREATE TABLE attempts (
    id               text PRIMARY KEY,
    delivery_id      text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL,
    number           integer NOT NULL,
    started_at       double precision NOT NULL,
    duration_ms      double precision NOT NULL,
    outcome          text NOT NULL,
    status_code      integer,
    error            text,
    request_headers  text NOT NULL,              -- JSON object, secrets redacted
    response_headers text NOT NULL,              -- JSON object
    response_body    text                        -- bounded excerpt
);

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
-- latency stats read durations from these indexes, never the table
CREATE INDEX attempts_by_started ON attempts (started_at, duration_ms);
CREATE INDEX attempts_by_endpoint_started ON attempts (endpoint_id, started_at, duration_ms);
