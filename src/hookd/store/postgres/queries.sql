-- Named queries of the PostgreSQL adapter. Parameters are named (:name); the adapter turns them
-- into asyncpg's positional $n at load time (see store.py, `_Query`). Arrays are bound as
-- PostgreSQL arrays: batches travel as `unnest(:a::text[], :b::float8[], …)`, one round trip.

-- name: get_meta
SELECT value FROM meta WHERE key = :key;

-- name: put_meta_if_absent
INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING;

-- name: insert_api_key
INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at, revoked_at)
VALUES (:id, :tenant_id, :name, :prefix, :key_hash, :created_at, :revoked_at);

-- name: find_api_key
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys WHERE key_hash = :key_hash;

-- name: list_api_keys
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys
WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
ORDER BY id;

-- name: get_api_key
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id);

-- name: revoke_api_key
-- The key as stored afterwards (a key revoked before keeps its first revoked_at).
UPDATE api_keys SET revoked_at = coalesce(revoked_at, :now)
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
RETURNING id, prefix, key_hash, tenant_id, name, created_at, revoked_at;

-- name: insert_endpoint
INSERT INTO endpoints (id, tenant_id, url, name, description, event_types, secrets, headers,
                       timeout, retry_policy, status, status_reason, metadata, created_at,
                       updated_at, filter, rate_limit, default_priority, max_in_flight,
                       ordering, disable_after, fallback_url, breaker, fallback_after)
VALUES (:id, :tenant_id, :url, :name, :description, :event_types, :secrets, :headers,
        :timeout, :retry_policy, :status, :status_reason, :metadata, :created_at, :updated_at,
        :filter, :rate_limit, :default_priority, :max_in_flight, :ordering,
        :disable_after, :fallback_url, :breaker, :fallback_after);

-- name: lock_endpoint_status
SELECT status, updated_at FROM endpoints WHERE id = :id AND tenant_id = :tenant_id FOR UPDATE;

-- name: update_endpoint
UPDATE endpoints
SET url = :url, name = :name, description = :description, event_types = :event_types,
    secrets = :secrets, headers = :headers, timeout = :timeout, retry_policy = :retry_policy,
    status = :status, status_reason = :status_reason, metadata = :metadata,
    updated_at = :updated_at, filter = :filter, rate_limit = :rate_limit,
    default_priority = :default_priority, max_in_flight = :max_in_flight, ordering = :ordering,
    disable_after = :disable_after, fallback_url = :fallback_url, breaker = :breaker,
    fallback_after = :fallback_after
WHERE id = :id AND tenant_id = :tenant_id;

-- name: get_endpoint
SELECT * FROM endpoints
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id);

-- name: list_endpoints
SELECT * FROM endpoints
WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
  AND (:cursor::text IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: endpoints_by_ids
SELECT * FROM endpoints WHERE id = ANY(:ids::text[]);

-- name: fanout_targets
SELECT id, tenant_id, event_types, status, default_priority, ordering
FROM endpoints WHERE tenant_id = ANY(:tenants::text[]);

-- name: delete_endpoint
DELETE FROM endpoints
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
RETURNING tenant_id;

-- name: park_endpoint_deliveries
UPDATE deliveries SET status = 'parked', updated_at = :now
WHERE endpoint_id = :endpoint_id AND status = 'pending';

-- name: breaker_closed
-- Its probe closed an endpoint's breaker: what waited for it (due by :until, the end of the
-- probe's wait) is due now.
UPDATE deliveries SET next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND status = 'pending' AND next_attempt_at > :now
  AND next_attempt_at <= :until;

-- name: resume_endpoint_deliveries
UPDATE deliveries SET status = 'pending', next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND status = 'parked';

-- name: lock_fifo_endpoints
-- Publishers and recorders of one FIFO endpoint take turns choosing its head (ids come sorted,
-- so two transactions can't deadlock); the lock is held until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('hookd-fifo' || chr(31) || e.id, 0))
FROM (SELECT id FROM endpoints
      WHERE id = ANY(:endpoint_ids::text[]) AND ordering = 'fifo' ORDER BY id) AS e;

-- name: promote_fifo_heads
-- FIFO endpoints among :endpoint_ids with no head (no pending, sending or parked delivery): their
-- oldest queued delivery becomes the head, due now (parked when the endpoint is not active).
-- Run after lock_fifo_endpoints, as its own statement: it must see what the transactions that
-- held the lock before committed.
UPDATE deliveries d
SET status = CASE WHEN e.status = 'active' THEN 'pending' ELSE 'parked' END,
    next_attempt_at = :now, updated_at = :now
FROM endpoints e,
     LATERAL (SELECT q.id FROM deliveries q
              WHERE q.endpoint_id = e.id AND q.status = 'queued'
              ORDER BY q.created_at, q.id LIMIT 1) AS head
WHERE e.id = ANY(:endpoint_ids::text[]) AND e.ordering = 'fifo' AND d.id = head.id
  AND NOT EXISTS (SELECT 1 FROM deliveries o
                  WHERE o.endpoint_id = e.id AND o.status IN ('pending', 'sending', 'parked'));

-- name: release_queued
-- An endpoint no longer FIFO: what waited in its queue is due now.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND status = 'queued';

-- name: disable_endpoint
UPDATE endpoints SET status = 'disabled', status_reason = :reason, updated_at = :now
WHERE id = :id AND status <> 'disabled'
RETURNING id, tenant_id, url;

-- name: track_endpoint_health
-- After a batch of attempts: endpoints with a success are not failing; the others that failed
-- are failing since now unless they already were. Returns those failing for longer than their
-- `disable_after` (seconds, per endpoint; NULL: never), to be disabled.
WITH succeeded AS (
    UPDATE endpoints SET last_success_at = :now, failing_since = NULL
    WHERE id = ANY(:succeeded::text[])
), failing AS (
    UPDATE endpoints e SET failing_since = coalesce(e.failing_since, :now)
    FROM unnest(:failed::text[], :disable_after::float8[]) AS f(id, after)
    WHERE e.id = f.id
    RETURNING e.id, e.status, e.failing_since, f.after
)
SELECT id, after FROM failing
WHERE status <> 'disabled' AND after IS NOT NULL AND failing_since <= :now - after;

-- name: lock_idempotency_keys
-- Publishers of one (tenant, key), in any process, take turns: each waits here until the one
-- before has committed, then sees its event. Keys come sorted, so two batches can't deadlock.
SELECT pg_advisory_xact_lock(hashtextextended(k.tenant_id || chr(31) || k.key, 0))
FROM unnest(:tenants::text[], :keys::text[]) AS k(tenant_id, key);

-- name: idempotent_events
-- For each (tenant, key): the newest event inside its window (since NULL: ever).
SELECT DISTINCT ON (e.tenant_id, e.idempotency_key)
       e.*, (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id) AS deliveries
FROM events e
JOIN unnest(:tenants::text[], :keys::text[], :since::float8[])
     AS k(tenant_id, idempotency_key, since)
  ON e.tenant_id = k.tenant_id AND e.idempotency_key = k.idempotency_key
WHERE k.since IS NULL OR e.created_at >= k.since
ORDER BY e.tenant_id, e.idempotency_key, e.created_at DESC, e.id DESC;

-- name: insert_events
INSERT INTO events (id, tenant_id, type, payload, occurred_at, created_at, idempotency_key,
                    priority)
SELECT * FROM unnest(:ids::text[], :tenants::text[], :types::text[], :payloads::bytea[],
                     :occurred::float8[], :created::float8[], :keys::text[], :priorities::int[]);

-- name: insert_deliveries
INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, priority,
                        next_attempt_at, created_at, updated_at)
SELECT id, tenant_id, event_id, endpoint_id, event_type, status, priority, at, at, at
FROM unnest(:ids::text[], :tenants::text[], :event_ids::text[], :endpoint_ids::text[],
            :types::text[], :statuses::text[], :priorities::int[], :at::float8[])
     AS d(id, tenant_id, event_id, endpoint_id, event_type, status, priority, at);

-- name: notify
SELECT pg_notify(:channel, :payload);

-- name: get_event
SELECT * FROM events
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id);

-- name: list_events
SELECT * FROM events
WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
  AND (:type::text IS NULL OR type = :type)
  AND (:created_after::float8 IS NULL OR created_at >= :created_after)
  AND (:created_before::float8 IS NULL OR created_at < :created_before)
  AND (:cursor::text IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: insert_event_type
-- Nothing when the tenant has that name already (the adapter answers Conflict).
INSERT INTO event_types (id, tenant_id, name, description, schema, example, archived,
                         created_at, updated_at)
VALUES (:id, :tenant_id, :name, :description, :schema, :example, :archived,
        :created_at, :updated_at)
ON CONFLICT (tenant_id, name) DO NOTHING;

-- name: update_event_type
UPDATE event_types
SET description = :description, schema = :schema, example = :example, archived = :archived,
    updated_at = :updated_at
WHERE tenant_id = :tenant_id AND name = :name;

-- name: get_event_type
SELECT * FROM event_types WHERE tenant_id = :tenant_id AND name = :name;

-- name: event_types_by_name
SELECT * FROM event_types WHERE tenant_id = :tenant_id AND name = ANY(:names::text[]);

-- name: list_event_types
SELECT * FROM event_types
WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
  AND (:include_archived::boolean OR NOT archived)
  AND (:cursor::text IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: claim_due
-- One statement: lock up to :limit due rows that no other worker is locking (SKIP LOCKED), in
-- (priority DESC, due) order along the partial index deliveries_due, lease them, and return them
-- with the event each body is made of. `priority = ANY(every level)` on the index's first column
-- makes one range walk per level, highest first, in index order (no sort): deliveries not yet
-- due are never read, whatever their priority.
WITH claimed AS (
    UPDATE deliveries
    SET status = 'sending', lease_owner = :worker_id, next_attempt_at = :lease_until,
        updated_at = :now
    WHERE id IN (
        SELECT id FROM deliveries
        WHERE status IN ('pending', 'sending')
          AND priority = ANY('{10,9,8,7,6,5,4,3,2,1,0,-1,-2,-3,-4,-5,-6,-7,-8,-9,-10}'::int[])
          AND next_attempt_at <= :now
        ORDER BY priority DESC, next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, endpoint_id, event_id, event_type, attempts, total_attempts, priority,
              fallback
)
SELECT c.id, c.endpoint_id, c.event_id, c.event_type, c.attempts, c.total_attempts,
       c.priority, c.fallback, e.type, e.occurred_at, e.payload
FROM claimed c JOIN events e ON e.id = c.event_id;

-- name: insert_attempts
-- Attempts of deliveries deleted meanwhile are dropped with them.
INSERT INTO attempts (id, delivery_id, endpoint_id, number, started_at, duration_ms, outcome,
                      status_code, error, request_headers, response_headers, response_body)
SELECT a.*
FROM unnest(:ids::text[], :delivery_ids::text[], :endpoint_ids::text[], :numbers::int[],
            :started::float8[], :durations::float8[], :outcomes::text[], :codes::int[],
            :errors::text[], :request_headers::text[], :response_headers::text[],
            :bodies::text[])
     AS a(id, delivery_id, endpoint_id, number, started_at, duration_ms, outcome, status_code,
          error, request_headers, response_headers, response_body)
WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id);

-- name: complete_deliveries
-- The results of a batch in one statement (was one UPDATE per row, pipelined: 40% more time).
-- Its plan does not depend on statistics: the deliveries are found by primary key
-- (`d.id = ANY(:ids)`: in key order, so two workers lock rows in one order), the rows of the
-- batch are hashed, and store.record turns nested loops off around it (with the worker's
-- lease_owner unseen by ANALYZE the planner expects one row and rescans unnest() per delivery:
-- 35-70 ms for 256 rows instead of 11; bench/pg_driver.py). A retry for an endpoint that is no
-- longer active is parked instead.
UPDATE deliveries AS d
SET status = CASE
        WHEN r.status = 'pending'
             AND (SELECT e.status FROM endpoints e WHERE e.id = d.endpoint_id) <> 'active'
        THEN 'parked' ELSE r.status END,
    next_attempt_at = r.next_attempt_at,
    attempts = CASE WHEN r.to_fallback THEN 0 ELSE d.attempts + 1 END,
    fallback = d.fallback OR r.to_fallback,
    total_attempts = d.total_attempts + 1,
    last_status_code = r.status_code,
    last_error = r.error,
    lease_owner = NULL,
    updated_at = :now
FROM unnest(:ids::text[], :statuses::text[], :next_attempt_at::float8[], :status_codes::int[],
            :errors::text[], :to_fallback::boolean[])
     AS r(id, status, next_attempt_at, status_code, error, to_fallback)
WHERE d.id = ANY(:ids::text[]) AND d.id = r.id AND d.lease_owner = :worker_id
  AND d.status = 'sending';

-- name: release_leases
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now
WHERE lease_owner = :worker_id AND status = 'sending' AND id = ANY(:ids::text[]);

-- name: release_worker_leases
-- Every lease of one worker, found along deliveries_due: a leased delivery's next_attempt_at is
-- its lease's end, so the walk past :now skips the due backlog.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now
WHERE status IN ('pending', 'sending')
  AND priority = ANY('{10,9,8,7,6,5,4,3,2,1,0,-1,-2,-3,-4,-5,-6,-7,-8,-9,-10}'::int[])
  AND next_attempt_at > :now AND status = 'sending' AND lease_owner = :worker_id;

-- name: next_due_at
-- The earliest of each priority level's first entry in deliveries_due.
SELECT min(first.at)
FROM unnest('{10,9,8,7,6,5,4,3,2,1,0,-1,-2,-3,-4,-5,-6,-7,-8,-9,-10}'::int[]) AS level(priority),
     LATERAL (SELECT d.next_attempt_at AS at FROM deliveries d
              WHERE d.status IN ('pending', 'sending') AND d.priority = level.priority
              ORDER BY d.priority DESC, d.next_attempt_at
              LIMIT 1) AS first;

-- name: list_deliveries
SELECT * FROM deliveries
WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
  AND (:statuses::text[] IS NULL OR status = ANY(:statuses))
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
  AND (:event_id::text IS NULL OR event_id = :event_id)
  AND (:event_type::text IS NULL OR event_type = :event_type)
  AND (:created_after::float8 IS NULL OR created_at >= :created_after)
  AND (:created_before::float8 IS NULL OR created_at < :created_before)
  AND (:updated_before::float8 IS NULL OR updated_at < :updated_before)
  AND (:cursor::text IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: get_delivery
SELECT * FROM deliveries
WHERE id = :id AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id);

-- name: list_attempts
SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.delivery_id = :delivery_id AND (:tenant_id::text IS NULL OR d.tenant_id = :tenant_id)
ORDER BY a.number;

-- name: requeue
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    attempts = 0, fallback = false, next_attempt_at = :now, lease_owner = NULL, updated_at = :now
WHERE id IN (
    SELECT id FROM deliveries
    WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
      AND status <> 'sending'
      AND (:ids::text[] IS NULL OR id = ANY(:ids))
      AND (:statuses::text[] IS NULL OR status = ANY(:statuses))
      AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
      AND (:event_id::text IS NULL OR event_id = :event_id)
      AND (:event_type::text IS NULL OR event_type = :event_type)
      AND (:created_after::float8 IS NULL OR created_at >= :created_after)
      AND (:created_before::float8 IS NULL OR created_at < :created_before)
      AND (:updated_before::float8 IS NULL OR updated_at < :updated_before)
    ORDER BY id
    LIMIT :limit
    FOR UPDATE
)
RETURNING status;

-- name: purge
DELETE FROM deliveries
WHERE id IN (
    SELECT id FROM deliveries
    WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
      AND status <> 'sending'
      AND (:statuses::text[] IS NULL OR status = ANY(:statuses))
      AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
      AND (:event_id::text IS NULL OR event_id = :event_id)
      AND (:event_type::text IS NULL OR event_type = :event_type)
      AND (:created_after::float8 IS NULL OR created_at >= :created_after)
      AND (:created_before::float8 IS NULL OR created_at < :created_before)
      AND (:updated_before::float8 IS NULL OR updated_at < :updated_before)
    ORDER BY id
    FOR UPDATE
);

-- Stats over a time window (range scans on deliveries_by_created & co.). --------------------

-- name: count_deliveries
SELECT endpoint_id, event_type, status, count(*) AS n
FROM deliveries
WHERE created_at >= :since AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
GROUP BY endpoint_id, event_type, status;

-- name: attempt_totals
SELECT count(*), coalesce(sum(duration_ms), 0.0) FROM attempts
WHERE started_at >= :since
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
  AND (:tenant_id::text IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id));

-- name: attempt_sample
SELECT duration_ms FROM attempts
WHERE started_at >= :since
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
  AND (:tenant_id::text IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id))
ORDER BY started_at DESC
LIMIT :limit;

-- name: queue_counts
SELECT
    (SELECT count(*) FROM deliveries
     WHERE status IN ('pending', 'sending')
       AND priority = ANY('{10,9,8,7,6,5,4,3,2,1,0,-1,-2,-3,-4,-5,-6,-7,-8,-9,-10}'::int[])
       AND next_attempt_at <= :now) AS due,
    (SELECT count(*) FROM deliveries WHERE status = 'pending') AS pending,
    (SELECT count(*) FROM deliveries WHERE status = 'sending') AS sending,
    (SELECT count(*) FROM deliveries WHERE status = 'parked') AS parked;

-- name: defer_lease
-- A lease given back without an attempt, due again at :until (hookd.store.port: `defer`); one
-- row by primary key, sent as a pipelined executemany.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :until, updated_at = :now
WHERE id = :id AND lease_owner = :worker_id AND status = 'sending';

-- name: ensure_gates
-- A claim batch's endpoints each get a row (a fresh gate) so that lock_gates can lock it.
INSERT INTO endpoint_gates (endpoint_id, updated_at)
SELECT e, :now::float8 FROM unnest(:ids::text[]) AS e ORDER BY e
ON CONFLICT (endpoint_id) DO NOTHING;

-- name: lock_gates
-- Locked in endpoint order (one lock order for every worker process) until the transaction
-- saves what hookd.policy.admission decided.
SELECT endpoint_id, tokens, updated_at, backoff_until, breaker FROM endpoint_gates
WHERE endpoint_id = ANY(:ids::text[]) ORDER BY endpoint_id FOR UPDATE;

-- name: gates_for
SELECT endpoint_id, tokens, updated_at, backoff_until, breaker FROM endpoint_gates
WHERE endpoint_id = ANY(:ids::text[]);

-- name: save_gates
UPDATE endpoint_gates AS t
SET tokens = g.tokens, updated_at = g.updated_at, backoff_until = g.backoff_until,
    breaker_state = g.breaker_state, breaker = g.breaker
FROM unnest(:endpoint_ids::text[], :tokens::float8[], :updated_at::float8[],
            :backoff_until::float8[], :breaker_state::text[], :breaker::text[])
     AS g(endpoint_id, tokens, updated_at, backoff_until, breaker_state, breaker)
WHERE t.endpoint_id = g.endpoint_id;

-- name: tripped_breakers
SELECT endpoint_id, tokens, updated_at, backoff_until, breaker FROM endpoint_gates
WHERE breaker_state <> 'closed' ORDER BY endpoint_id LIMIT :limit;

-- name: back_off
-- A back-off already set is never shortened.
INSERT INTO endpoint_gates AS t (endpoint_id, updated_at, backoff_until)
SELECT b.endpoint_id, :now::float8, b.until
FROM unnest(:endpoint_ids::text[], :until::float8[]) AS b(endpoint_id, until)
ORDER BY b.endpoint_id
ON CONFLICT (endpoint_id) DO UPDATE
SET backoff_until = greatest(t.backoff_until, excluded.backoff_until);

-- name: divert_leases
-- Held back by a breaker open too long: due at once at the fallback URL, a fresh budget.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT e.status FROM endpoints e WHERE e.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now, fallback = true, attempts = 0
WHERE lease_owner = :worker_id AND status = 'sending' AND id = ANY(:ids::text[]);
