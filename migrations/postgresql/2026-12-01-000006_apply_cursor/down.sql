DROP INDEX webhook_events_retry;
DROP TABLE apply_cursor;
