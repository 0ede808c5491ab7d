-- table api_keys
id text NOT NULL
tenant_id text
name text
prefix text NOT NULL
key_hash text NOT NULL
created_at double precision NOT NULL
revoked_at double precision
-- table attempts
id text NOT NULL
delivery_id text NOT NULL
endpoint_id text NOT NULL
number integer NOT NULL
started_at double precision NOT NULL
duration_ms double precision NOT NULL
outcome text NOT NULL
status_code integer
error text
request_headers text NOT NULL
response_headers text NOT NULL
response_body text
-- table deliveries
id text NOT NULL
tenant_id text NOT NULL
event_id text NOT NULL
endpoint_id text NOT NULL
event_type text NOT NULL
status text NOT NULL
priority integer NOT NULL DEFAULT 0
attempts integer NOT NULL DEFAULT 0
total_attempts integer NOT NULL DEFAULT 0
next_attempt_at double precision
lease_owner text
last_status_code integer
last_error text
created_at double precision NOT NULL
updated_at double precision NOT NULL
fallback boolean NOT NULL DEFAULT false
-- table endpoint_gates
endpoint_id text NOT NULL
tokens double precision
updated_at double precision NOT NULL
backoff_until double precision NOT NULL DEFAULT 0
breaker_state text NOT NULL DEFAULT 'closed'::text
breaker text
-- table endpoints
id text NOT NULL
tenant_id text NOT NULL
url text NOT NULL
name text
description text
event_types text NOT NULL
secrets text NOT NULL
headers text NOT NULL
timeout double precision NOT NULL
retry_policy text NOT NULL
status text NOT NULL
status_reason text
metadata text NOT NULL
created_at double precision NOT NULL
updated_at double precision NOT NULL
filter text
rate_limit text
default_priority integer NOT NULL DEFAULT 0
max_in_flight integer
ordering text NOT NULL DEFAULT 'none'::text
disable_after double precision
last_success_at double precision
failing_since double precision
fallback_url text
breaker text
fallback_after double precision
-- table event_types
id text NOT NULL
tenant_id text NOT NULL
name text NOT NULL
description text
schema text
example text
archived boolean NOT NULL DEFAULT false
created_at double precision NOT NULL
updated_at double precision NOT NULL
-- table events
id text NOT NULL
tenant_id text NOT NULL
type text NOT NULL
payload bytea NOT NULL
occurred_at double precision NOT NULL
created_at double precision NOT NULL
idempotency_key text
priority integer
-- table meta
key text NOT NULL
value text NOT NULL
-- table schema_migrations
version integer NOT NULL
name text NOT NULL
applied_at double precision NOT NULL
-- constraint api_keys.api_keys_key_hash_key: UNIQUE (key_hash)
-- constraint api_keys.api_keys_pkey: PRIMARY KEY (id)
-- constraint attempts.attempts_delivery_id_fkey: FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE
-- constraint attempts.attempts_pkey: PRIMARY KEY (id)
-- constraint deliveries.deliveries_endpoint_id_fkey: FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE
-- constraint deliveries.deliveries_event_id_fkey: FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE
-- constraint deliveries.deliveries_pkey: PRIMARY KEY (id)
-- constraint endpoint_gates.endpoint_gates_pkey: PRIMARY KEY (endpoint_id)
-- constraint endpoints.endpoints_pkey: PRIMARY KEY (id)
-- constraint event_types.event_types_pkey: PRIMARY KEY (id)
-- constraint events.events_pkey: PRIMARY KEY (id)
-- constraint meta.meta_pkey: PRIMARY KEY (key)
-- constraint schema_migrations.schema_migrations_pkey: PRIMARY KEY (version)
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys USING btree (key_hash);
CREATE UNIQUE INDEX api_keys_pkey ON api_keys USING btree (id);
CREATE INDEX attempts_by_delivery ON attempts USING btree (delivery_id, number);
CREATE INDEX attempts_by_endpoint_started ON attempts USING btree (endpoint_id, started_at, duration_ms);
CREATE INDEX attempts_by_started ON attempts USING btree (started_at, duration_ms);
CREATE UNIQUE INDEX attempts_pkey ON attempts USING btree (id);
CREATE INDEX deliveries_by_created ON deliveries USING btree (created_at);
CREATE INDEX deliveries_by_endpoint ON deliveries USING btree (endpoint_id, status);
CREATE INDEX deliveries_by_endpoint_created ON deliveries USING btree (endpoint_id, created_at);
CREATE INDEX deliveries_by_event ON deliveries USING btree (event_id);
CREATE INDEX deliveries_by_status ON deliveries USING btree (status, id);
CREATE INDEX deliveries_by_tenant ON deliveries USING btree (tenant_id, id);
CREATE INDEX deliveries_due ON deliveries USING btree (priority DESC, next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'sending'::text]));
CREATE UNIQUE INDEX deliveries_pkey ON deliveries USING btree (id);
CREATE INDEX deliveries_queued ON deliveries USING btree (endpoint_id, created_at, id) WHERE (status = 'queued'::text);
CREATE UNIQUE INDEX endpoint_gates_pkey ON endpoint_gates USING btree (endpoint_id);
CREATE INDEX endpoint_gates_tripped ON endpoint_gates USING btree (breaker_state) WHERE (breaker_state <> 'closed'::text);
CREATE INDEX endpoints_by_tenant ON endpoints USING btree (tenant_id, id);
CREATE UNIQUE INDEX endpoints_pkey ON endpoints USING btree (id);
CREATE UNIQUE INDEX event_types_by_name ON event_types USING btree (tenant_id, name);
CREATE INDEX event_types_by_tenant ON event_types USING btree (tenant_id, id);
CREATE UNIQUE INDEX event_types_pkey ON event_types USING btree (id);
CREATE INDEX events_by_idempotency_key ON events USING btree (tenant_id, idempotency_key, created_at) WHERE (idempotency_key IS NOT NULL);
CREATE INDEX events_by_tenant ON events USING btree (tenant_id, id);
CREATE INDEX events_by_tenant_type ON events USING btree (tenant_id, type, id);
CREATE UNIQUE INDEX events_pkey ON events USING btree (id);
CREATE UNIQUE INDEX meta_pkey ON meta USING btree (key);
CREATE UNIQUE INDEX schema_migrations_pkey ON schema_migrations USING btree (version);
