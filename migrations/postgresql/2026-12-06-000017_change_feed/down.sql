DROP TABLE change_feed_pruned;
DROP TABLE changes;
ALTER TABLE workspaces DROP COLUMN change_position;
