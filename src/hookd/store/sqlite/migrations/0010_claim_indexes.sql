-- hookd schema, version 10: a claim moves as few index entries as it can (issue 6). Taking a
-- delivery (pending -> sending) moved its entries in deliveries_by_status and
-- deliveries_by_endpoint, and sending it moved them again; now a claim touches neither:
-- * deliveries_by_status leaves out the two states a claim moves between (deliveries_due holds
--   exactly those, and carries the status now for its counts);
-- * deliveries_by_endpoint files sending under pending: the queries that want one of the two
--   name the same expression and then the status (`CASE status WHEN 'sending' ...`).

DROP INDEX deliveries_by_status;
CREATE INDEX deliveries_by_status ON deliveries (status, id)
    WHERE status NOT IN ('pending', 'sending');

DROP INDEX deliveries_by_endpoint;
CREATE INDEX deliveries_by_endpoint
    ON deliveries (endpoint_id, (CASE status WHEN 'sending' THEN 'pending' ELSE status END));

DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (priority DESC, next_attempt_at, status)
    WHERE status IN ('pending', 'sending');
