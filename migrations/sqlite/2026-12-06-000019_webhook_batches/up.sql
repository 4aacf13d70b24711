-- Batched deliveries (rule 23): an endpoint may take up to `batch_size` changes in one message (1: one change
-- per message, the default). `retry_through` is the last position of a message that failed, so its retry
-- carries the same changes under the same `webhook-id` even when more changes have arrived since.
ALTER TABLE webhook_endpoints ADD COLUMN batch_size INTEGER NOT NULL DEFAULT 1;
ALTER TABLE webhook_endpoints ADD COLUMN retry_through BIGINT;
