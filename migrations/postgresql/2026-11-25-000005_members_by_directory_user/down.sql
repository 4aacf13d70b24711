DROP INDEX members_directory_user;
CREATE INDEX members_directory_user ON members (directory_user_id);
