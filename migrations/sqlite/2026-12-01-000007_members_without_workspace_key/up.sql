-- Members are written in bulk (a pull provisions thousands at once) and the foreign key to workspaces made
-- every inserted row look its workspace up. No workspace is ever deleted, and the code that deletes a
-- member deletes its team sources itself (as for team_member_sources). SQLite drops a constraint by
-- rebuilding the table.
CREATE TABLE members_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    managed_by TEXT NOT NULL,
    directory_user_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, email_key)
);
INSERT INTO members_rebuilt
SELECT id, workspace_id, email, email_key, first_name, last_name, role, status, managed_by, directory_user_id,
       created_at, updated_at
FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
CREATE INDEX members_directory_user ON members (directory_user_id, workspace_id);
