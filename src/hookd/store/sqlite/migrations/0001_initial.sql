-- hookd schema, version 1. Times are Unix seconds (REAL). JSON columns hold text.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT,                       -- NULL: admin key
    name        TEXT,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    revoked_at  REAL
) STRICT;

CREATE TABLE endpoints (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    url           TEXT NOT NULL,
    name          TEXT,
    description   TEXT,
    event_types   TEXT NOT NULL,            -- JSON array of patterns
    secrets       TEXT NOT NULL,            -- JSON array of {v: ciphertext, c: created, e: expires}
    headers       TEXT NOT NULL,            -- ciphertext of a JSON object
    timeout       REAL NOT NULL,
    retry_policy  TEXT NOT NULL,            -- JSON
    status        TEXT NOT NULL,
    status_reason TEXT,
    metadata      TEXT NOT NULL,            -- JSON object
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
) STRICT;

CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         BLOB NOT NULL,          -- JSON object, bytes as sent in `data`
    occurred_at     REAL NOT NULL,
    created_at      REAL NOT NULL,
    idempotency_key TEXT
) STRICT;

CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    total_attempts   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,                  -- due time; while sending, the lease's end
    lease_owner      TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
) STRICT;

-- The claim walks this index in due order; only claimable rows are in it.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL,
    number           INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    duration_ms      REAL NOT NULL,
    outcome          TEXT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    request_headers  TEXT NOT NULL,         -- JSON object, secrets redacted
    response_headers TEXT NOT NULL,         -- JSON object
    response_body    TEXT                   -- bounded excerpt
) STRICT;

CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
