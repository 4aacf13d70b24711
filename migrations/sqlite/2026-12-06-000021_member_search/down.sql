DROP INDEX members_workspace_role;
DROP INDEX members_workspace_status;
DROP INDEX members_workspace;
DROP TRIGGER members_search_update;
DROP TRIGGER members_search_delete;
DROP TRIGGER members_search_insert;
DROP TABLE members_search;
ALTER TABLE members DROP COLUMN search_text;
