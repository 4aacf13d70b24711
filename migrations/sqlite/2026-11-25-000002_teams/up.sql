CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name_key)
);

-- Why a member is in a team: one row per source; group_id is '' for a manual source.
-- No foreign keys here: linking a large group writes thousands of rows at once, and the code that deletes
-- teams and members deletes their sources in the same transaction.
CREATE TABLE team_member_sources (
    team_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    source_type TEXT NOT NULL,
    group_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (team_id, member_id, source_type, group_id)
);
CREATE INDEX team_member_sources_member ON team_member_sources (member_id);
CREATE INDEX team_member_sources_group ON team_member_sources (group_id, team_id);

CREATE TABLE team_links (
    team_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (team_id, group_id)
);
CREATE INDEX team_links_group ON team_links (group_id);

CREATE TABLE role_mappings (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, group_id)
);
CREATE INDEX role_mappings_group ON role_mappings (group_id);

CREATE INDEX directory_group_memberships_group ON directory_group_memberships (group_id, is_member);
