ALTER TABLE webhook_events DROP COLUMN redeliveries;
