-- A signed body that is not an event has no event id to be deduplicated by: it is known by the SHA-256 of
-- its bytes (hex), so the broker's retries of it are counted on the first row instead of stored again.
-- Rows stored before have none; retention prunes them like the rest.
ALTER TABLE webhook_events ADD COLUMN body_hash TEXT;
CREATE INDEX webhook_events_body_hash ON webhook_events (body_hash, id) WHERE body_hash IS NOT NULL;
