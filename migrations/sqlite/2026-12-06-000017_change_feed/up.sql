-- The change feed (rule 23): every change to a workspace's members, teams, team memberships and roles, written in
-- the transaction that makes it. `position` counts a workspace's changes from 1 without gaps; the workspace's
-- counter is taken in the same transaction, so positions commit in order. SQLite has one writer, so `id` is
-- commit order across workspaces.
ALTER TABLE workspaces ADD COLUMN change_position BIGINT NOT NULL DEFAULT 0;

CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    workspace_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    change_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    data TEXT NOT NULL,
    cause_type TEXT NOT NULL,
    cause_id TEXT NOT NULL
);
CREATE UNIQUE INDEX changes_workspace_position ON changes (workspace_id, position);
CREATE INDEX changes_occurred_at ON changes (occurred_at);

-- How far retention has pruned the feed across workspaces: a cursor before it answers 410.
CREATE TABLE change_feed_pruned (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    through_txid TEXT NOT NULL,
    through_id BIGINT NOT NULL
);
