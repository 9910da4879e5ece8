-- A user's GitHub token, for hired agents that push to the user's repositories. Stored sealed
-- with the server's key (bound to the user id), never returned; the last 4 characters and the
-- time it was set are kept for the status.

CREATE TABLE github_tokens (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    sealed_token TEXT NOT NULL,
    last4        TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
