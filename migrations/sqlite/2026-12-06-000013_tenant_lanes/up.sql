-- Deliveries are applied per directory, in lanes: one order per directory and none across directories, so
-- one workspace's backlog, or a lock one of its writers holds, never holds up another's. Each lane is read
-- from its own cursor, through an index that starts at it, never over the lane's applied history.
ALTER TABLE webhook_events ADD COLUMN lane TEXT NOT NULL DEFAULT '';
UPDATE webhook_events SET lane = directory_id WHERE directory_id IS NOT NULL;
CREATE INDEX webhook_events_lane ON webhook_events (lane, id);
-- A lane's deliveries waiting for a retry, and only those.
CREATE INDEX webhook_events_lane_retry ON webhook_events (lane, next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- The newest delivery stored in each lane. Written by intake alone (in the transaction that stores the
-- delivery), so intake never waits for a row the applier holds.
CREATE TABLE lane_heads (
    lane TEXT PRIMARY KEY NOT NULL,
    received_through BIGINT NOT NULL
);
INSERT INTO lane_heads (lane, received_through)
SELECT lane, MAX(id) FROM webhook_events GROUP BY lane;

-- How far the applier has taken each lane. Written by the applier alone. The single cursor it replaces
-- becomes every lane's starting point.
CREATE TABLE apply_lanes (
    lane TEXT PRIMARY KEY NOT NULL,
    applied_through BIGINT NOT NULL
);
INSERT INTO apply_lanes (lane, applied_through)
SELECT lane, (SELECT applied_through FROM apply_cursor WHERE id = 1) FROM lane_heads;
DROP TABLE apply_cursor;

-- A pull holds its directory by a lease on its run instead of a database session held for the whole run:
-- no connection is kept while the pull waits for the broker. One running run per directory, across every
-- instance; a run whose lease ran out (its process stopped) is ended by whoever finds it.
ALTER TABLE sync_runs ADD COLUMN lease_until TIMESTAMP;
UPDATE sync_runs SET status = 'failed', phase = 'done',
    error = 'interrupted: the process running it stopped before it ended'
WHERE status = 'running'
  AND id NOT IN (SELECT MAX(id) FROM sync_runs WHERE status = 'running' GROUP BY directory_id);
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (directory_id) WHERE status = 'running';
