DROP INDEX sync_runs_one_running;
ALTER TABLE sync_runs DROP COLUMN lease_until;
CREATE TABLE apply_cursor (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    applied_through BIGINT NOT NULL
);
INSERT INTO apply_cursor (id, applied_through)
SELECT 1, COALESCE((SELECT MIN(applied_through) FROM apply_lanes), (SELECT MAX(id) FROM webhook_events), 0);
DROP TABLE apply_lanes;
DROP TABLE lane_heads;
DROP INDEX webhook_events_lane_retry;
DROP INDEX webhook_events_lane;
ALTER TABLE webhook_events DROP COLUMN lane;
