-- MCP sessions, kept where every server sees them: a session's requests may land on any server
-- (the official SDK restores it there from `init_params`), its subscriptions are read by the
-- server holding its stream, and the hiring changes they listen for are written by the server
-- where the change happened.

CREATE TABLE mcp_sessions (
    id          TEXT PRIMARY KEY,
    -- `hirer` or `agent`.
    surface     TEXT NOT NULL,
    -- `streamable` or `sse`.
    transport   TEXT NOT NULL,
    -- The credential (and acting principal) that opened it: only it may use the session.
    owner       TEXT NOT NULL,
    -- The acting principal's wallet key, and the acting agent if any.
    principal   TEXT NOT NULL,
    agent_id    TEXT,
    -- The client's `initialize` parameters (JSON), to restore the session on another server.
    init_params TEXT,
    created_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX mcp_sessions_by_agent ON mcp_sessions (agent_id);
CREATE INDEX mcp_sessions_by_seen ON mcp_sessions (seen_at);

-- `resources/subscribe`: what a session listens for. `target` names what a change must concern
-- (`hiring:<id>`, `client:<principal>`, `provider:<agent id>`; see `tasks::changes`).
CREATE TABLE mcp_subscriptions (
    session_id TEXT NOT NULL REFERENCES mcp_sessions(id) ON DELETE CASCADE,
    uri        TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, uri)
);
CREATE INDEX mcp_subscriptions_by_target ON mcp_subscriptions (target);

-- The server-to-client streams open now, and on which server (kept alive by that server).
CREATE TABLE mcp_streams (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    server_id  TEXT NOT NULL,
    opened_at  BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
CREATE INDEX mcp_streams_by_session ON mcp_streams (session_id);
CREATE INDEX mcp_streams_by_server ON mcp_streams (server_id);

-- Hirings that changed lately (`tasks::changes`), read by every server's listener, then purged.
CREATE TABLE hiring_changes (
    id                TEXT PRIMARY KEY,
    hiring_id         TEXT NOT NULL,
    client_principal  TEXT NOT NULL,
    provider_agent_id TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX hiring_changes_by_time ON hiring_changes (created_at);
