-- The applier reads the delivery log from a cursor: every delivery with an id up to `applied_through` has
-- been taken, so finding new work reads the primary key from there on and never passes over applied
-- history (with or without vacuum). Delivery ids are handed out in commit order (see the database module).
CREATE TABLE apply_cursor (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    applied_through BIGINT NOT NULL
);
INSERT INTO apply_cursor (id, applied_through)
SELECT 1, COALESCE(
    (SELECT MIN(id) - 1 FROM webhook_events WHERE status = 'received' AND next_attempt_at IS NULL),
    (SELECT MAX(id) FROM webhook_events),
    0);

-- Deliveries waiting for a retry, and only those: the applier finds the due ones here.
CREATE INDEX webhook_events_retry ON webhook_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
