-- SQLite already compares text byte by byte. The (group_id, is_member) index repeated the primary key's
-- first column; it goes (as on PostgreSQL, where this migration also makes keys compare byte by byte).
DROP INDEX directory_group_memberships_group;
