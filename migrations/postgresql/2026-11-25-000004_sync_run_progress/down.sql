ALTER TABLE sync_runs DROP COLUMN users_listed;
ALTER TABLE sync_runs DROP COLUMN phase;
