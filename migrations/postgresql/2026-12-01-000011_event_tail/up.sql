-- Which path brought a delivery: a webhook, or the Events API tail.
ALTER TABLE webhook_events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';

-- The Events API tail's place, shared by every instance: the id of the last event it stored (advanced in
-- the transaction that stores the events up to it), or, before it has one, the time to start reading
-- from (the start of the full pull that brought Rollcall up to date).
CREATE TABLE event_tail (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    cursor TEXT,
    cursor_event_at TIMESTAMP,
    resume_from TIMESTAMP,
    last_poll_at TIMESTAMP,
    events_stored BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
