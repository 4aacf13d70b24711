-- Outbound webhooks (rule 23): each workspace's endpoints receive its change feed, signed (Standard Webhooks),
-- in feed order, at least once. An endpoint's cursor is the last position it was handed (sent with a 2xx, or
-- not one of its types): a change is stored in the feed before it is sent, so a restart sends on from the
-- cursor. `lease_until` and `lease_holder` keep one sender per endpoint across instances without holding a
-- connection.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    delivered_through BIGINT NOT NULL,
    failing_since TIMESTAMP,
    failed_attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    lease_until TIMESTAMP,
    lease_holder TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id);

-- Every attempt to deliver a change to an endpoint, for the API and the screen.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    endpoint_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_attempted_at ON webhook_attempts (attempted_at);
