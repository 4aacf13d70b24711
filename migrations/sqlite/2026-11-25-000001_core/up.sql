CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    organization_id TEXT NOT NULL UNIQUE,
    directory_sync_enabled BOOLEAN NOT NULL DEFAULT 0,
    default_role TEXT NOT NULL DEFAULT 'viewer',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE directories (
    id TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL,
    directory_type TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    source_updated_at TIMESTAMP NOT NULL,
    source_event_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP,
    last_synced_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX directories_organization ON directories (organization_id);

CREATE TABLE directory_users (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    idp_id TEXT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    state TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    source_updated_at TIMESTAMP NOT NULL,
    source_event_at TIMESTAMP NOT NULL,
    ever_active BOOLEAN NOT NULL DEFAULT 0,
    deleted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX directory_users_idp ON directory_users (directory_id, idp_id);

CREATE TABLE directory_groups (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    idp_id TEXT NOT NULL,
    name TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    source_updated_at TIMESTAMP NOT NULL,
    source_event_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX directory_groups_directory ON directory_groups (directory_id);

CREATE TABLE directory_group_memberships (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    directory_id TEXT NOT NULL,
    is_member BOOLEAN NOT NULL,
    last_event_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX directory_group_memberships_user ON directory_group_memberships (user_id);

CREATE TABLE members (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    managed_by TEXT NOT NULL,
    directory_user_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, email_key)
);
CREATE INDEX members_directory_user ON members (directory_user_id);

CREATE TABLE webhook_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event_id TEXT,
    event_type TEXT,
    directory_id TEXT,
    event_created_at TIMESTAMP,
    body BLOB NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP
);
CREATE INDEX webhook_events_status ON webhook_events (status, id);
CREATE INDEX webhook_events_event_id ON webhook_events (event_id, id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    workspace_id TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    action TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    before TEXT,
    after TEXT,
    cause_type TEXT NOT NULL,
    cause_id TEXT NOT NULL
);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);
