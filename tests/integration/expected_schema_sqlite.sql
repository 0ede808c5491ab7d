-- index attempts_by_delivery
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
-- index attempts_by_endpoint_started
CREATE INDEX attempts_by_endpoint_started ON attempts (endpoint_id, started_at, duration_ms);
-- index attempts_by_started
CREATE INDEX attempts_by_started ON attempts (started_at, endpoint_id, duration_ms);
-- index deliveries_by_created
CREATE INDEX deliveries_by_created ON deliveries (created_at);
-- index deliveries_by_endpoint
CREATE INDEX deliveries_by_endpoint
    ON deliveries (endpoint_id, (CASE status WHEN 'sending' THEN 'pending' ELSE status END))
    WHERE status != 'delivered';
-- index deliveries_by_endpoint_created
CREATE INDEX deliveries_by_endpoint_created ON deliveries (endpoint_id, created_at);
-- index deliveries_by_event
CREATE INDEX deliveries_by_event ON deliveries (event_id);
-- index deliveries_by_status
CREATE INDEX deliveries_by_status ON deliveries (status, id)
    WHERE status NOT IN ('pending', 'sending');
-- index deliveries_by_tenant
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
-- index deliveries_due
CREATE INDEX deliveries_due ON deliveries (priority DESC, next_attempt_at, status)
    WHERE status IN ('pending', 'sending');
-- index deliveries_queued
CREATE INDEX deliveries_queued ON deliveries (endpoint_id, created_at, id)
    WHERE status = 'queued';
-- index endpoint_gates_tripped
CREATE INDEX endpoint_gates_tripped ON endpoint_gates (breaker_state)
    WHERE breaker_state <> 'closed';
-- index endpoints_by_tenant
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, id);
-- index event_types_by_name
CREATE UNIQUE INDEX event_types_by_name ON event_types (tenant_id, name);
-- index event_types_by_tenant
CREATE INDEX event_types_by_tenant ON event_types (tenant_id, id);
-- index events_by_idempotency_key
CREATE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key, created_at)
    WHERE idempotency_key IS NOT NULL;
-- index events_by_tenant
CREATE INDEX events_by_tenant ON events (tenant_id, id);
-- index events_by_tenant_type
CREATE INDEX events_by_tenant_type ON events (tenant_id, type, id);
-- table api_keys
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT,                       
    name        TEXT,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    revoked_at  REAL
) STRICT;
-- table attempts
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
    request_headers  TEXT NOT NULL,         
    response_headers TEXT NOT NULL,         
    response_body    TEXT                   
) STRICT;
-- table deliveries
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
    next_attempt_at  REAL,                  
    lease_owner      TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
, fallback INTEGER NOT NULL DEFAULT 0) STRICT;
-- table endpoint_gates
CREATE TABLE endpoint_gates (
    endpoint_id   TEXT PRIMARY KEY,
    tokens        REAL,                       
    updated_at    REAL NOT NULL,
    backoff_until REAL NOT NULL DEFAULT 0,    
    breaker_state TEXT NOT NULL DEFAULT 'closed',
    breaker       TEXT                        
) WITHOUT ROWID;
-- table endpoints
CREATE TABLE endpoints (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    url           TEXT NOT NULL,
    name          TEXT,
    description   TEXT,
    event_types   TEXT NOT NULL,            
    secrets       TEXT NOT NULL,            
    headers       TEXT NOT NULL,            
    timeout       REAL NOT NULL,
    retry_policy  TEXT NOT NULL,            
    status        TEXT NOT NULL,
    status_reason TEXT,
    metadata      TEXT NOT NULL,            
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
, filter TEXT, rate_limit TEXT, default_priority INTEGER NOT NULL DEFAULT 0, max_in_flight INTEGER, ordering TEXT NOT NULL DEFAULT 'none', disable_after REAL, last_success_at REAL, failing_since REAL, fallback_url TEXT, breaker TEXT, fallback_after REAL) STRICT;
-- table event_types
CREATE TABLE event_types (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    schema      TEXT,                       
    example     TEXT,                       
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
) STRICT;
-- table events
CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         BLOB NOT NULL,          
    occurred_at     REAL NOT NULL,
    created_at      REAL NOT NULL,
    idempotency_key TEXT
, priority INTEGER) STRICT;
-- table meta
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
-- table schema_migrations
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL) STRICT;
