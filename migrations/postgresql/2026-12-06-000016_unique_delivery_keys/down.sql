DROP INDEX webhook_events_event_id;
CREATE INDEX webhook_events_event_id ON webhook_events (event_id, id);
DROP INDEX webhook_events_body_hash;
CREATE INDEX webhook_events_body_hash ON webhook_events (body_hash, id) WHERE body_hash IS NOT NULL;
