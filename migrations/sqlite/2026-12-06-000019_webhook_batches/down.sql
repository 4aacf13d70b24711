ALTER TABLE webhook_endpoints DROP COLUMN retry_through;
ALTER TABLE webhook_endpoints DROP COLUMN batch_size;
