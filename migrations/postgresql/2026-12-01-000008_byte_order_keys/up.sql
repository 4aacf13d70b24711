-- Ids and keys are ASCII and only ever compared for equality or ordered as ids: comparing them byte by byte
-- ("C") gives the same answers as the database's locale and makes every index lookup and insert cheaper.
-- The (group_id, is_member) index repeated the primary key's first column; it goes.
DROP INDEX directory_group_memberships_group;
ALTER TABLE directory_users
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN directory_id TYPE TEXT COLLATE "C",
    ALTER COLUMN idp_id TYPE TEXT COLLATE "C";
ALTER TABLE directory_groups
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE directory_group_memberships
    ALTER COLUMN group_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE members
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C",
    ALTER COLUMN email_key TYPE TEXT COLLATE "C",
    ALTER COLUMN directory_user_id TYPE TEXT COLLATE "C";
ALTER TABLE team_member_sources
    ALTER COLUMN team_id TYPE TEXT COLLATE "C",
    ALTER COLUMN member_id TYPE TEXT COLLATE "C",
    ALTER COLUMN source_type TYPE TEXT COLLATE "C",
    ALTER COLUMN group_id TYPE TEXT COLLATE "C";
ALTER TABLE webhook_events
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C";
ALTER TABLE audit_log
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C";
