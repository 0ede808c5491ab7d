-- Named queries of the SQLite adapter. Parameters are named (:name).

-- name: get_meta
SELECT value FROM meta WHERE key = :key;

-- name: put_meta
INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: bump_version
-- A counter kept as text in meta: one more (1 when it is new).
INSERT INTO meta (key, value) VALUES (:key, '1')
ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT);

-- name: insert_api_key
INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at, revoked_at)
VALUES (:id, :tenant_id, :name, :prefix, :key_hash, :created_at, :revoked_at);

-- name: find_api_key
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys WHERE key_hash = :key_hash;

-- name: list_api_keys
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
ORDER BY id;

-- name: get_api_key
SELECT id, prefix, key_hash, tenant_id, name, created_at, revoked_at
FROM api_keys
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = :now
WHERE id = :id AND revoked_at IS NULL AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: insert_endpoint
INSERT INTO endpoints (id, tenant_id, url, name, description, event_types, secrets, headers,
                       timeout, retry_policy, status, status_reason, metadata, created_at,
                       updated_at, filter, rate_limit, default_priority, max_in_flight,
                       ordering, disable_after, fallback_url, breaker, fallback_after)
VALUES (:id, :tenant_id, :url, :name, :description, :event_types, :secrets, :headers,
        :timeout, :retry_policy, :status, :status_reason, :metadata, :created_at, :updated_at,
        :filter, :rate_limit, :default_priority, :max_in_flight, :ordering,
        :disable_after, :fallback_url, :breaker, :fallback_after);

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

-- name: endpoint_tenant
SELECT tenant_id, url FROM endpoints WHERE id = :id;

-- name: endpoints_succeeded
UPDATE endpoints SET last_success_at = :now, failing_since = NULL
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: endpoints_failing
UPDATE endpoints SET failing_since = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND failing_since IS NULL;

-- name: failing_too_long
SELECT id FROM endpoints
WHERE id = :id AND status != 'disabled' AND failing_since <= :now - :disable_after;

-- name: endpoint_version
SELECT status, updated_at FROM endpoints WHERE id = :id AND tenant_id = :tenant_id;

-- name: get_endpoint
SELECT * FROM endpoints
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: list_endpoints
SELECT * FROM endpoints
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: endpoints_by_ids
SELECT * FROM endpoints WHERE id IN (SELECT value FROM json_each(:ids));

-- name: fanout_targets
SELECT id, event_types, status, default_priority, ordering
FROM endpoints WHERE tenant_id = :tenant_id;

-- name: delete_endpoint
DELETE FROM endpoints
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: park_endpoint_deliveries
-- (the CASE and the status != 'delivered' are deliveries_by_endpoint's: see migrations 10, 11)
UPDATE deliveries SET status = 'parked', updated_at = :now
WHERE endpoint_id = :endpoint_id AND (CASE status WHEN 'sending' THEN 'pending' ELSE status END) = 'pending' AND status != 'delivered'
  AND status = 'pending';

-- name: breaker_closed
-- Its probe closed an endpoint's breaker: what waited for it (due by :until, the end of the
-- probe's wait) is due now.
UPDATE deliveries SET next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND (CASE status WHEN 'sending' THEN 'pending' ELSE status END) = 'pending' AND status != 'delivered'
  AND status = 'pending' AND next_attempt_at > :now AND next_attempt_at <= :until;

-- name: resume_endpoint_deliveries
UPDATE deliveries SET status = 'pending', next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND (CASE status WHEN 'sending' THEN 'pending' ELSE status END) = 'parked' AND status != 'delivered';

-- name: promote_fifo_heads
-- FIFO endpoints among :endpoint_ids with no head (no pending, sending or parked delivery): their
-- oldest queued delivery becomes the head, due now (parked when the endpoint is not active).
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    next_attempt_at = :now, updated_at = :now
WHERE id IN (
    SELECT (SELECT q.id FROM deliveries q INDEXED BY deliveries_queued
            WHERE q.endpoint_id = e.id AND q.status = 'queued'
            ORDER BY q.created_at, q.id LIMIT 1)
    FROM endpoints e
    WHERE e.id IN (SELECT value FROM json_each(:endpoint_ids)) AND e.ordering = 'fifo'
      AND NOT EXISTS (SELECT 1 FROM deliveries o INDEXED BY deliveries_by_endpoint
                      WHERE o.endpoint_id = e.id
                        AND (CASE o.status WHEN 'sending' THEN 'pending' ELSE o.status END)
                            IN ('pending', 'parked')
                        AND o.status != 'delivered')
);

-- name: release_queued
-- An endpoint no longer FIFO: what waited in its queue is due now.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id) = 'active'
        THEN 'pending' ELSE 'parked' END,
    next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND (CASE status WHEN 'sending' THEN 'pending' ELSE status END) = 'queued' AND status != 'delivered';

-- name: disable_endpoint
UPDATE endpoints SET status = 'disabled', status_reason = :reason, updated_at = :now
WHERE id = :id AND status != 'disabled';

-- name: find_idempotent_event
-- The newest event of the tenant with this key inside the retention window (:since NULL: ever).
SELECT * FROM events
WHERE tenant_id = :tenant_id AND idempotency_key = :key
  AND (:since IS NULL OR created_at >= :since)
ORDER BY created_at DESC
LIMIT 1;

-- name: count_event_deliveries
SELECT count(*) FROM deliveries WHERE event_id = :event_id;

-- name: insert_event
INSERT INTO events (id, tenant_id, type, payload, occurred_at, created_at, idempotency_key,
                    priority)
VALUES (:id, :tenant_id, :type, :payload, :occurred_at, :created_at, :idempotency_key,
        :priority);

-- name: insert_delivery
INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, priority,
                        next_attempt_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: get_event
SELECT * FROM events
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: list_events
SELECT * FROM events
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:type IS NULL OR type = :type)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: insert_event_type
INSERT INTO event_types (id, tenant_id, name, description, schema, example, archived,
                         created_at, updated_at)
VALUES (:id, :tenant_id, :name, :description, :schema, :example, :archived,
        :created_at, :updated_at);

-- name: update_event_type
UPDATE event_types
SET description = :description, schema = :schema, example = :example, archived = :archived,
    updated_at = :updated_at
WHERE tenant_id = :tenant_id AND name = :name;

-- name: get_event_type
SELECT * FROM event_types WHERE tenant_id = :tenant_id AND name = :name;

-- name: event_types_by_name
SELECT * FROM event_types
WHERE tenant_id = :tenant_id AND name IN (SELECT value FROM json_each(:names));

-- name: list_event_types
SELECT * FROM event_types
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:include_archived OR NOT archived)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: events_for_bodies
-- The events of a claim in one step: [id, type, occurred_at] of each as one JSON array, and their
-- payloads, in the same order, as one byte string with 0x1F between them. JSON text holds no
-- byte 0x1F (a control character: escaped inside strings, not allowed outside them), and every
-- payload is JSON text hookd wrote (orjson), so the bytes split back exactly: the payloads are
-- copied, not quoted into a JSON string here and parsed back into Python strings there.
SELECT json_group_array(json_array(id, type, occurred_at)),
       CAST(group_concat(payload, x'1f') AS BLOB)
FROM events
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: events_for_bodies_rows
-- events_for_bodies one row at a time: for the claim whose payloads did not split back.
SELECT id, type, occurred_at, payload FROM events
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: claim_due
-- The due deliveries a claim takes, as one JSON array (one step of the statement, not one per
-- row: see store._insert_rows); claim_mark then leases them, in the same transaction.
SELECT json_group_array(json_array(id, endpoint_id, event_id, event_type, attempts,
                                   total_attempts, priority, fallback))
FROM deliveries
WHERE id IN (
    -- Without statistics the planner prefers deliveries_by_status and a sort, whose cost grows
    -- with the backlog; the partial index keeps a claim's cost flat (bench/README.md). Higher
    -- priority first: one range walk per level (the IN list is every level, MAX_PRIORITY down to
    -- MIN_PRIORITY), so deliveries not yet due are never read, whatever their priority.
    SELECT id FROM deliveries INDEXED BY deliveries_due
    WHERE status IN ('pending', 'sending')
      AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
      AND next_attempt_at <= :now
    ORDER BY priority DESC, next_attempt_at
    LIMIT :limit
);

-- name: claim_mark
UPDATE deliveries
SET status = 'sending', lease_owner = :worker_id, next_attempt_at = :lease_until,
    updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: insert_attempt
-- An attempt whose delivery was deleted meanwhile (with its endpoint or event, or purged) is
-- dropped with it: the check is the insert's own (one statement, not a query first).
INSERT INTO attempts (id, delivery_id, endpoint_id, number, started_at, duration_ms, outcome,
                      status_code, error, request_headers, response_headers, response_body)
SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)) AS v
WHERE EXISTS (SELECT 1 FROM deliveries WHERE deliveries.id = v.column2);

-- name: complete_deliveries
-- A batch of results in one statement (one step, not one per row: see store._insert_rows).
-- :rows is a JSON array of [id, status, next_attempt_at, status_code, error, to_fallback]. A
-- retry for an endpoint that is no longer active is parked instead; to_fallback switches to the
-- fallback URL with a fresh attempt budget. The unary + keeps the planner off
-- deliveries_by_status: the rows drive the join, each finding its delivery by id (an EXPLAIN
-- test guards the plan).
UPDATE deliveries
SET status = CASE
        WHEN r.r_status = 'pending'
             AND (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
                 != 'active'
        THEN 'parked' ELSE r.r_status END,
    next_attempt_at = r.r_next_at,
    attempts = CASE WHEN r.r_fallback THEN 0 ELSE attempts + 1 END,
    fallback = CASE WHEN r.r_fallback THEN 1 ELSE fallback END,
    total_attempts = total_attempts + 1,
    last_status_code = r.r_code,
    last_error = r.r_error,
    lease_owner = NULL,
    updated_at = :now
FROM (SELECT json_extract(value, '$[0]') AS r_id, json_extract(value, '$[1]') AS r_status,
             json_extract(value, '$[2]') AS r_next_at, json_extract(value, '$[3]') AS r_code,
             json_extract(value, '$[4]') AS r_error, json_extract(value, '$[5]') AS r_fallback
      FROM json_each(:rows)) AS r
WHERE deliveries.id = r.r_id AND deliveries.lease_owner = :worker_id
  AND +deliveries.status = 'sending';

-- name: release_leases
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
             = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now
WHERE lease_owner = :worker_id AND status = 'sending'
  AND id IN (SELECT value FROM json_each(:ids));

-- name: release_worker_leases
-- Every lease of one worker, found along deliveries_due: a leased delivery's next_attempt_at is
-- its lease's end, so one range walk per priority level past :now skips the due backlog.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
             = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now
WHERE id IN (
    SELECT id FROM deliveries INDEXED BY deliveries_due
    WHERE status IN ('pending', 'sending')
      AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
      AND next_attempt_at > :now AND status = 'sending' AND lease_owner = :worker_id
);

-- name: recover_all_leases
UPDATE deliveries
SET status = 'pending', lease_owner = NULL, next_attempt_at = :now, updated_at = :now
WHERE id IN (
    SELECT id FROM deliveries INDEXED BY deliveries_due
    WHERE status IN ('pending', 'sending') AND status = 'sending'
      AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
);

-- name: next_due_at
SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_due
WHERE status IN ('pending', 'sending')
  AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10);

-- name: list_deliveries
SELECT * FROM deliveries
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
  AND (:event_id IS NULL OR event_id = :event_id)
  AND (:event_type IS NULL OR event_type = :event_type)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:updated_before IS NULL OR updated_at < :updated_before)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- name: get_delivery
SELECT * FROM deliveries
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: list_attempts
SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.delivery_id = :delivery_id AND (:tenant_id IS NULL OR d.tenant_id = :tenant_id)
ORDER BY a.number;

-- name: requeue
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
             = 'active'
        THEN 'pending' ELSE 'parked' END,
    attempts = 0, fallback = 0, next_attempt_at = :now, lease_owner = NULL, updated_at = :now
WHERE id IN (
    SELECT id FROM deliveries
    WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
      AND status != 'sending'
      AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
      AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
      AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
      AND (:event_id IS NULL OR event_id = :event_id)
      AND (:event_type IS NULL OR event_type = :event_type)
      AND (:created_after IS NULL OR created_at >= :created_after)
      AND (:created_before IS NULL OR created_at < :created_before)
      AND (:updated_before IS NULL OR updated_at < :updated_before)
    ORDER BY id
    LIMIT :limit
);

-- name: purge
DELETE FROM deliveries
WHERE id IN (
    SELECT id FROM deliveries
    WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
      AND status != 'sending'
      AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
      AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
      AND (:event_id IS NULL OR event_id = :event_id)
      AND (:event_type IS NULL OR event_type = :event_type)
      AND (:created_after IS NULL OR created_at >= :created_after)
      AND (:created_before IS NULL OR created_at < :created_before)
      AND (:updated_before IS NULL OR updated_at < :updated_before)
);

-- Stats over a time window (migration 0003 adds the indexes they walk). --------------------

-- name: count_deliveries
SELECT endpoint_id, event_type, status, count(*) AS n
FROM deliveries INDEXED BY deliveries_by_created
WHERE created_at >= :since AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
GROUP BY endpoint_id, event_type, status;

-- name: count_endpoint_deliveries
SELECT endpoint_id, event_type, status, count(*) AS n
FROM deliveries INDEXED BY deliveries_by_endpoint_created
WHERE endpoint_id = :endpoint_id AND created_at >= :since
  AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
GROUP BY endpoint_id, event_type, status;

-- name: attempt_totals
SELECT count(*), total(duration_ms) FROM attempts INDEXED BY attempts_by_started
WHERE started_at >= :since
  AND (:tenant_id IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id));

-- name: attempt_sample
SELECT duration_ms FROM attempts INDEXED BY attempts_by_started
WHERE started_at >= :since
  AND (:tenant_id IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id))
ORDER BY started_at DESC
LIMIT :limit;

-- name: endpoint_attempt_totals
SELECT count(*), total(duration_ms) FROM attempts INDEXED BY attempts_by_endpoint_started
WHERE endpoint_id = :endpoint_id AND started_at >= :since
  AND (:tenant_id IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id));

-- name: endpoint_attempt_sample
SELECT duration_ms FROM attempts INDEXED BY attempts_by_endpoint_started
WHERE endpoint_id = :endpoint_id AND started_at >= :since
  AND (:tenant_id IS NULL
       OR endpoint_id IN (SELECT id FROM endpoints WHERE tenant_id = :tenant_id))
ORDER BY started_at DESC
LIMIT :limit;

-- name: queue_counts
-- Index-only counts: pending and sending walk the partial due index (which holds the status),
-- parked deliveries_by_status. Each repeats its partial index's WHERE: the planner uses a
-- partial index only for a query whose WHERE has that very term.
SELECT
    (SELECT count(*) FROM deliveries INDEXED BY deliveries_due
     WHERE status IN ('pending', 'sending')
       AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
       AND next_attempt_at <= :now) AS due,
    (SELECT count(*) FROM deliveries INDEXED BY deliveries_due
     WHERE status IN ('pending', 'sending') AND status = 'pending'
       AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
    ) AS pending,
    (SELECT count(*) FROM deliveries INDEXED BY deliveries_due
     WHERE status IN ('pending', 'sending') AND status = 'sending'
       AND priority IN (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
    ) AS sending,
    (SELECT count(*) FROM deliveries INDEXED BY deliveries_by_status
     WHERE status = 'parked' AND status NOT IN ('pending', 'sending')) AS parked;

-- name: defer_lease
-- A lease given back without an attempt, due again at ?1 (hookd.store.port: `defer`).
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
             = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = ?1, updated_at = ?2
WHERE id = ?3 AND lease_owner = ?4 AND status = 'sending';

-- name: gates_for
-- The shared sending state of the endpoints in :ids (a JSON array); hookd.policy.admission
-- decides on it in the writer, which saves what changed with save_gate.
SELECT endpoint_id, tokens, updated_at, backoff_until, breaker FROM endpoint_gates
WHERE endpoint_id IN (SELECT value FROM json_each(:ids));

-- name: save_gate
INSERT INTO endpoint_gates (endpoint_id, tokens, updated_at, backoff_until, breaker_state, breaker)
VALUES (:endpoint_id, :tokens, :updated_at, :backoff_until, :breaker_state, :breaker)
ON CONFLICT (endpoint_id) DO UPDATE
SET tokens = excluded.tokens, updated_at = excluded.updated_at,
    backoff_until = excluded.backoff_until, breaker_state = excluded.breaker_state,
    breaker = excluded.breaker;

-- name: tripped_breakers
SELECT endpoint_id, tokens, updated_at, backoff_until, breaker FROM endpoint_gates
WHERE breaker_state <> 'closed' ORDER BY endpoint_id LIMIT :limit;

-- name: back_off
-- :until is a JSON array of [endpoint_id, time]; a back-off already set is never shortened.
INSERT INTO endpoint_gates AS t (endpoint_id, updated_at, backoff_until)
SELECT json_extract(b.value, '$[0]'), :now, json_extract(b.value, '$[1]')
FROM json_each(:until) AS b WHERE true
ON CONFLICT (endpoint_id) DO UPDATE
SET backoff_until = max(t.backoff_until, excluded.backoff_until);

-- name: divert_leases
-- Held back by a breaker open too long: due at once at the fallback URL, a fresh budget.
UPDATE deliveries
SET status = CASE
        WHEN (SELECT status FROM endpoints WHERE endpoints.id = deliveries.endpoint_id)
             = 'active'
        THEN 'pending' ELSE 'parked' END,
    lease_owner = NULL, next_attempt_at = :now, updated_at = :now, fallback = 1, attempts = 0
WHERE lease_owner = :worker_id AND status = 'sending'
  AND id IN (SELECT value FROM json_each(:ids));
