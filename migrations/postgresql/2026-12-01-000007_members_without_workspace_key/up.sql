-- Members are written in bulk (a pull provisions thousands at once) and the foreign key to workspaces made
-- every inserted row look its workspace up and lock it. No workspace is ever deleted, and the code that
-- deletes a member deletes its team sources itself (as for team_member_sources).
ALTER TABLE members DROP CONSTRAINT members_workspace_id_fkey;
