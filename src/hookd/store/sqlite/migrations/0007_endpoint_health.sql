-- hookd schema, version 7: auto-disable after sustained failure (issue 5). Recording attempts
-- keeps `last_success_at` and `failing_since` per endpoint (one statement per batch); an
-- endpoint failing for longer than its `disable_after` (NULL: the server's default) is disabled.

ALTER TABLE endpoints ADD COLUMN disable_after REAL;     -- seconds; NULL: HOOKD_DISABLE_AFTER
ALTER TABLE endpoints ADD COLUMN last_success_at REAL;
ALTER TABLE endpoints ADD COLUMN failing_since REAL;     -- NULL: not failing
