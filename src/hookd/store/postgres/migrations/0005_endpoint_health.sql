-- hookd schema on PostgreSQL, version 5: auto-disable after sustained failure (issue 5).
-- Recording attempts keeps `last_success_at` and `failing_since` per endpoint (one statement per
-- batch); an endpoint failing for longer than its `disable_after` (NULL: the server's default)
-- is disabled.

ALTER TABLE endpoints ADD COLUMN disable_after double precision;   -- NULL: HOOKD_DISABLE_AFTER
ALTER TABLE endpoints ADD COLUMN last_success_at double precision;
ALTER TABLE endpoints ADD COLUMN failing_since double precision;   -- NULL: not failing
