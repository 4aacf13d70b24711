CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    force BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    counts TEXT,
    error TEXT,
    requests INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX sync_runs_directory ON sync_runs (directory_id, created_at);
