CREATE INDEX directory_group_memberships_group ON directory_group_memberships (group_id, is_member);
