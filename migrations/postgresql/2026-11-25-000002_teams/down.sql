DROP INDEX directory_group_memberships_group;
DROP TABLE role_mappings;
DROP TABLE team_links;
DROP TABLE team_member_sources;
DROP TABLE teams;
