-- Tokens get a life cycle: a name to tell them apart, when each was last used (written at most once a
-- minute), when it expires and when it was revoked. A revoked or expired token is refused; revoked tokens
-- stay, so the audit log's token ids keep their meaning.
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN revoked_at TIMESTAMP;
