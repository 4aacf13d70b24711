-- Native SCIM directories (issue: broker-optional). A SCIM directory is a row of `directories` whose type
-- is `scim`: the identity provider pushes to Rollcall instead of a broker, so the apply engine, teams,
-- role mappings, the guard and the screens treat it as any directory; no pull reads it.
--
-- `scim_directories` holds each one's workspace and its clock: the last stamp given to a write, so that
-- stamps only grow (rule 6 orders a directory's writes by them).
CREATE TABLE scim_directories (
    directory_id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    clock TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX scim_directories_workspace ON scim_directories (workspace_id);

-- The bearer tokens an identity provider sends (several, for rotation); kept as their SHA-256.
CREATE TABLE scim_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX scim_tokens_directory ON scim_tokens (directory_id);

-- What the identity provider pushed, as a SCIM GET answers it: `body` is the resource (JSON) without its
-- `meta`; `version` grows with each write (the ETag). `name_key` is the user's `userName` or the group's
-- `displayName` in lower case: a user's is unique in its directory (RFC 7643 §4.1.1, case-insensitive).
CREATE TABLE scim_resources (
    directory_id TEXT NOT NULL,
    id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    name_key TEXT NOT NULL,
    external_id TEXT,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (directory_id, id)
);
CREATE UNIQUE INDEX scim_resources_user_name ON scim_resources (directory_id, name_key)
    WHERE resource_type = 'User';
CREATE INDEX scim_resources_by_type ON scim_resources (directory_id, resource_type, id);
