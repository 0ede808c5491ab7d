-- hookd schema, version 3: indexes for stats over a time window (GET /v1/stats,
-- GET /v1/endpoints/{id}/stats). Each keeps a window query a range scan instead of a table
-- scan; the attempt indexes cover their queries (latency never reads the attempts table).

CREATE INDEX deliveries_by_created ON deliveries (created_at);
CREATE INDEX deliveries_by_endpoint_created ON deliveries (endpoint_id, created_at);
CREATE INDEX attempts_by_started ON attempts (started_at, endpoint_id, duration_ms);
CREATE INDEX attempts_by_endpoint_started ON attempts (endpoint_id, started_at, duration_ms);
