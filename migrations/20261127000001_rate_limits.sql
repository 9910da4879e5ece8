-- Rate limits live in the database so that every server of a deployment counts against one
-- limit and a restart clears nothing (API.md §8). A counter is a fixed window that starts at
-- its first hit; a lockout blocks a subject (an IP, an account at an IP) until a time.

CREATE TABLE rate_limit_counters (
    bucket       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_ms    BIGINT NOT NULL,
    hits         BIGINT NOT NULL
);

CREATE TABLE rate_limit_lockouts (
    subject      TEXT PRIMARY KEY,
    locked_until BIGINT NOT NULL
);
