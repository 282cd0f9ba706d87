-- Indexes for the lookups rotation and retention make inside write transactions:
-- rule 3 finds the live child of a token (parent_id); clean-up walks revoked tokens.
-- Without them both scan the whole table while holding the write lock.

CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_revoked ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_family_revoked ON sessions (family_revoked_at) WHERE family_revoked_at IS NOT NULL;
