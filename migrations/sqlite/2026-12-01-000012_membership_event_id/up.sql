-- The id of the newest membership event seen for the pair: two events stamped with the same millisecond
-- are ordered by their ids, which the broker mints in time order (none for a change a full pull inferred).
ALTER TABLE directory_group_memberships ADD COLUMN last_event_id TEXT;
