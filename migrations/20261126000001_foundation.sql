-- Foundation: accounts, user API keys, agents, agent credentials, sessions.
-- Portable SQL for SQLite and PostgreSQL: TEXT ids (UUID strings), BIGINT for every integer
-- (money in 1e-8 USD units, Unix-millisecond times, 0/1 flags). See DESIGN.md, Storage.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE user_api_keys (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id),
    name               TEXT NOT NULL,
    key_hash           TEXT NOT NULL UNIQUE,
    prefix             TEXT NOT NULL,
    last4              TEXT NOT NULL,
    scopes             TEXT NOT NULL,
    max_price_per_hire BIGINT,
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT,
    expires_at         BIGINT,
    revoked_at         BIGINT
);
CREATE INDEX user_api_keys_by_user ON user_api_keys (user_id, created_at);

CREATE TABLE agents (
    id                    TEXT PRIMARY KEY,
    did                   TEXT NOT NULL UNIQUE,
    name                  TEXT NOT NULL,
    description           TEXT,
    owner_id              TEXT REFERENCES users(id),
    capabilities          TEXT NOT NULL,
    pricing_model         TEXT NOT NULL,
    base_price            BIGINT NOT NULL,
    category              TEXT,
    metadata              TEXT NOT NULL,
    status                TEXT NOT NULL,
    reputation_centi      BIGINT NOT NULL,
    tasks_completed       BIGINT NOT NULL DEFAULT 0,
    tasks_failed          BIGINT NOT NULL DEFAULT 0,
    rating_sum            BIGINT NOT NULL DEFAULT 0,
    rating_count          BIGINT NOT NULL DEFAULT 0,
    has_callback          BIGINT NOT NULL DEFAULT 0,
    last_seen_at          BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX agents_by_owner ON agents (owner_id);
CREATE INDEX agents_by_status ON agents (status, created_at);

-- One row per (agent, capability) so capability filters and /capabilities use an index.
CREATE TABLE agent_capabilities (
    agent_id   TEXT NOT NULL REFERENCES agents(id),
    capability TEXT NOT NULL,
    PRIMARY KEY (agent_id, capability)
);
CREATE INDEX agent_capabilities_by_name ON agent_capabilities (capability);

CREATE TABLE agent_credentials (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    last4        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX agent_credentials_by_agent ON agent_credentials (agent_id, created_at);

CREATE TABLE auth_sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    key_kind      TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX auth_sessions_by_key ON auth_sessions (key_id);
