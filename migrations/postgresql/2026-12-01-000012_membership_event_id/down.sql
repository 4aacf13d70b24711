ALTER TABLE directory_group_memberships DROP COLUMN last_event_id;
