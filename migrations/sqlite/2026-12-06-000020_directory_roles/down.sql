DROP TABLE directory_role_mappings;
ALTER TABLE workspaces DROP COLUMN default_role_slug;
ALTER TABLE workspaces DROP COLUMN role_source;
ALTER TABLE directory_users DROP COLUMN role_slugs;
