-- A delivery whose event id is already stored is not stored again: the first row counts the redeliveries.
ALTER TABLE webhook_events ADD COLUMN redeliveries INTEGER NOT NULL DEFAULT 0;
