-- hookd schema, version 2: event types, endpoint filter and rate limit, idempotency window.

CREATE TABLE event_types (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    schema      TEXT,                       -- JSON Schema (draft 2020-12); NULL: any object
    example     TEXT,                       -- JSON object
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
) STRICT;

CREATE UNIQUE INDEX event_types_by_name ON event_types (tenant_id, name);
CREATE INDEX event_types_by_tenant ON event_types (tenant_id, id);

ALTER TABLE endpoints ADD COLUMN filter TEXT;       -- JSON object, stored as given
ALTER TABLE endpoints ADD COLUMN rate_limit TEXT;   -- JSON {"per_second", "burst"}

-- An idempotency key is remembered for a window (HOOKD_IDEMPOTENCY_TTL), after which the same
-- key may name a new event: the key is no longer unique, the newest event within the window wins.
DROP INDEX events_by_idempotency_key;
CREATE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key, created_at)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_tenant_type ON events (tenant_id, type, id);
