-- Members found by any part of their name or email, case-insensitively, through an index: a full-text
-- table of trigrams (FTS5's `trigram` tokenizer, which folds case) over a generated column of the name
-- and the email, kept in step with `members` by triggers. The index is keyed by `members.rowid`, which
-- only a VACUUM changes: after one, `INSERT INTO members_search(members_search) VALUES ('rebuild')`.
ALTER TABLE members ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || email
) VIRTUAL;
CREATE VIRTUAL TABLE members_search USING fts5(
    search_text, content = 'members', content_rowid = 'rowid', tokenize = 'trigram'
);
CREATE TRIGGER members_search_insert AFTER INSERT ON members BEGIN
    INSERT INTO members_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER members_search_delete AFTER DELETE ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER members_search_update AFTER UPDATE ON members
    WHEN old.search_text IS NOT new.search_text BEGIN
    INSERT INTO members_search (members_search, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO members_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
INSERT INTO members_search (members_search) VALUES ('rebuild');
-- The filters of the Members screen, each beside the workspace, in id order (the list's order).
CREATE INDEX members_workspace ON members (workspace_id, id);
CREATE INDEX members_workspace_status ON members (workspace_id, status, id);
CREATE INDEX members_workspace_role ON members (workspace_id, role, id);
