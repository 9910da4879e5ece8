-- Browser sessions for the dashboard: a random cookie (only its SHA-256 stored) and the CSRF
-- token every form of that session must carry.
CREATE TABLE dashboard_sessions (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX dashboard_sessions_by_user ON dashboard_sessions (user_id);
