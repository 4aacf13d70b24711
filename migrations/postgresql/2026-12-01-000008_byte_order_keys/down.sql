ALTER TABLE audit_log ALTER COLUMN workspace_id TYPE TEXT COLLATE "default";
ALTER TABLE webhook_events
    ALTER COLUMN event_id TYPE TEXT COLLATE "default",
    ALTER COLUMN status TYPE TEXT COLLATE "default";
ALTER TABLE team_member_sources
    ALTER COLUMN team_id TYPE TEXT COLLATE "default",
    ALTER COLUMN member_id TYPE TEXT COLLATE "default",
    ALTER COLUMN source_type TYPE TEXT COLLATE "default",
    ALTER COLUMN group_id TYPE TEXT COLLATE "default";
ALTER TABLE members
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default",
    ALTER COLUMN email_key TYPE TEXT COLLATE "default",
    ALTER COLUMN directory_user_id TYPE TEXT COLLATE "default";
ALTER TABLE directory_group_memberships
    ALTER COLUMN group_id TYPE TEXT COLLATE "default",
    ALTER COLUMN user_id TYPE TEXT COLLATE "default";
ALTER TABLE directory_groups
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN directory_id TYPE TEXT COLLATE "default";
ALTER TABLE directory_users
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN directory_id TYPE TEXT COLLATE "default",
    ALTER COLUMN idp_id TYPE TEXT COLLATE "default";
CREATE INDEX directory_group_memberships_group ON directory_group_memberships (group_id, is_member);
