-- Availability pings over MCP: the server probing a hiring's agent asks the server holding the
-- agent's stream (`server_id`) to send a `ping` on it; whichever server receives the client's
-- answer records it. Purged after a minute.

CREATE TABLE mcp_pings (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    answered_at BIGINT
);
CREATE INDEX mcp_pings_to_send ON mcp_pings (server_id, sent_at);
CREATE INDEX mcp_pings_by_age ON mcp_pings (created_at);
