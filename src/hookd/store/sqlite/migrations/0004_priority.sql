-- hookd schema, version 4: priority (issue 5). A delivery's priority (-10..10, higher first) is
-- its event's, or its endpoint's `default_priority` when the event gave none.

ALTER TABLE endpoints ADD COLUMN default_priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN priority INTEGER;    -- as published; NULL: each endpoint's default

-- The claim walks this index once per priority level, highest first (`priority IN (10, …, -10)`),
-- each walk a range up to now: deliveries not yet due (retries waiting, at any priority) are
-- never read, so a claim's cost stays flat with the backlog.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (priority DESC, next_attempt_at)
    WHERE status IN ('pending', 'sending');
