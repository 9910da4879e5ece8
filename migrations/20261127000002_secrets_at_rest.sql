-- Secrets at rest. The server's sealing key is checked against the value recorded when the
-- database was first used (server_settings); webhook signing secrets are stored sealed (the
-- server seals any older plaintext one at start); the dashboard's CSRF token is derived from the
-- session cookie instead of being stored.

CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE dashboard_sessions DROP COLUMN csrf_token;
