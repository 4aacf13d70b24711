-- Roles from the directory. `role_slugs` are the role slugs the identity provider assigned a
-- directory user (a JSON array of text: `roles` when the broker sent it, else `role`). A workspace's
-- `role_source` says what decides its directory members' roles: `group_mappings` (rule 11, the default) or
-- `directory_roles`, through its table of slug → role; `default_role_slug` is the slug the broker's
-- environment gives users it maps to no role, which gives the workspace's `default_role`.
ALTER TABLE directory_users ADD COLUMN role_slugs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workspaces ADD COLUMN role_source TEXT NOT NULL DEFAULT 'group_mappings';
ALTER TABLE workspaces ADD COLUMN default_role_slug TEXT NOT NULL DEFAULT 'member';
CREATE TABLE directory_role_mappings (
    workspace_id TEXT NOT NULL,
    slug TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, slug)
);
