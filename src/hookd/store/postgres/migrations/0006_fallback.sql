-- hookd schema on PostgreSQL, version 6: fallback destination (issue 5). A delivery
-- dead-lettered at its endpoint's url goes on, on the same row, to the endpoint's fallback_url
-- with a fresh attempt budget (`fallback`); its attempts there carry the request header
-- webhook-fallback: true.

ALTER TABLE endpoints ADD COLUMN fallback_url text;
ALTER TABLE deliveries ADD COLUMN fallback boolean NOT NULL DEFAULT false;
