-- Members are looked up by directory user within a workspace: an index on both keeps SQLite from scanning
-- the whole workspace through the (workspace_id, email_key) index instead.
DROP INDEX members_directory_user;
CREATE INDEX members_directory_user ON members (directory_user_id, workspace_id);
