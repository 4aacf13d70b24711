DROP TABLE event_tail;
ALTER TABLE webhook_events DROP COLUMN source;
