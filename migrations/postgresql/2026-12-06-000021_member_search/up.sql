-- Members found by any part of their name or email, case-insensitively: a generated column of the name
-- and the email in lower case, with a trigram index (pg_trgm) that serves `LIKE '%…%'`. Where pg_trgm is
-- not available, or the migrating role may not create it, the search still works, by a scan, and the
-- migration says so.
ALTER TABLE members ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || email)
) STORED;
DO $$
DECLARE
    trgm_schema TEXT;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%): member search works without its index', SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX members_search ON members USING gin (search_text %I.gin_trgm_ops)',
            trgm_schema);
    END IF;
END $$;
-- The filters of the Members screen, each beside the workspace, in id order (the list's order).
CREATE INDEX members_workspace ON members (workspace_id, id);
CREATE INDEX members_workspace_status ON members (workspace_id, status, id);
CREATE INDEX members_workspace_role ON members (workspace_id, role, id);
