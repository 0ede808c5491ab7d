-- hookd schema on PostgreSQL, version 4: FIFO per endpoint (issue 5, opt-in). A FIFO endpoint has
-- one head at a time (pending, sending or parked); the deliveries behind it wait `queued`, out of
-- the due index, and the oldest becomes the head when the head ends (delivered, failed or dead).
-- Publishers and recorders of one FIFO endpoint take turns on an advisory lock to pick the head.

ALTER TABLE endpoints ADD COLUMN ordering text NOT NULL DEFAULT 'none';   -- 'none' | 'fifo'

-- The next head of a FIFO endpoint: its oldest queued delivery, in publish order.
CREATE INDEX deliveries_queued ON deliveries (endpoint_id, created_at, id)
    WHERE status = 'queued';
