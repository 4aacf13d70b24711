-- A delivery is stored once: its event id (or, for a signed body that is not an event, the hash of its
-- bytes) is unique, so a redelivery is refused by the database itself (INSERT … ON CONFLICT DO NOTHING)
-- rather than by reading first. Versions before intake dedupe stored a redelivered event again: those rows
-- are folded into the first one, which counts them as redeliveries.
UPDATE webhook_events
SET redeliveries = (
    SELECT COUNT(*) - 1 + SUM(d.redeliveries) FROM webhook_events d WHERE d.event_id = webhook_events.event_id
)
WHERE event_id IS NOT NULL
  AND id = (SELECT MIN(d.id) FROM webhook_events d WHERE d.event_id = webhook_events.event_id);
DELETE FROM webhook_events
WHERE event_id IS NOT NULL
  AND id > (SELECT MIN(d.id) FROM webhook_events d WHERE d.event_id = webhook_events.event_id);

UPDATE webhook_events
SET redeliveries = (
    SELECT COUNT(*) - 1 + SUM(d.redeliveries) FROM webhook_events d
    WHERE d.event_id IS NULL AND d.body_hash = webhook_events.body_hash
)
WHERE event_id IS NULL AND body_hash IS NOT NULL
  AND id = (
    SELECT MIN(d.id) FROM webhook_events d WHERE d.event_id IS NULL AND d.body_hash = webhook_events.body_hash
  );
DELETE FROM webhook_events
WHERE event_id IS NULL AND body_hash IS NOT NULL
  AND id > (
    SELECT MIN(d.id) FROM webhook_events d WHERE d.event_id IS NULL AND d.body_hash = webhook_events.body_hash
  );

DROP INDEX webhook_events_event_id;
CREATE UNIQUE INDEX webhook_events_event_id ON webhook_events (event_id) WHERE event_id IS NOT NULL;
DROP INDEX webhook_events_body_hash;
CREATE UNIQUE INDEX webhook_events_body_hash ON webhook_events (body_hash)
    WHERE event_id IS NULL AND body_hash IS NOT NULL;
