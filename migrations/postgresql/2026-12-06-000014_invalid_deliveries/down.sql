UPDATE webhook_events SET status = 'invalid' WHERE status = 'dismissed';
DROP INDEX webhook_events_body_hash;
ALTER TABLE webhook_events DROP COLUMN body_hash;
