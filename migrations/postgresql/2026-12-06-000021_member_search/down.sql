DROP INDEX members_workspace_role;
DROP INDEX members_workspace_status;
DROP INDEX members_workspace;
DROP INDEX IF EXISTS members_search;
ALTER TABLE members DROP COLUMN search_text;
