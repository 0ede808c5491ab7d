-- hookd schema, version 8: fallback destination (issue 5). A delivery dead-lettered at its
-- endpoint's url goes on, on the same row, to the endpoint's fallback_url with a fresh attempt
-- budget (`fallback` = 1); its attempts there carry the request header webhook-fallback: true.

ALTER TABLE endpoints ADD COLUMN fallback_url TEXT;
ALTER TABLE deliveries ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;
