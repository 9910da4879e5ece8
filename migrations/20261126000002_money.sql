-- Money: a double-entry ledger (accounts, journal entries, postings), the wallet statement
-- shown to people, deposits, withdrawals, tasks with escrow, disputes, idempotency records.

-- One account per principal and purpose, plus the platform's `fees` and the external `world`.
-- Ids are deterministic (`user:<id>:available`, `platform:fees`, `world`) so postings need no lookup.
CREATE TABLE ledger_accounts (
    id             TEXT PRIMARY KEY,
    owner_kind     TEXT NOT NULL,
    owner_id       TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    balance        BIGINT NOT NULL DEFAULT 0,
    allow_negative BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    CHECK (balance >= 0 OR allow_negative = 1)
);

-- One row per business event. `reference` is unique, so an event (a task's hold, its one
-- settlement, a deposit's credit) can be booked at most once whatever the interleaving.
CREATE TABLE journal_entries (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    reference  TEXT NOT NULL UNIQUE,
    task_id    TEXT,
    memo       TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX journal_entries_by_task ON journal_entries (task_id);

-- Never updated or deleted.
CREATE TABLE postings (
    id         TEXT PRIMARY KEY,
    entry_id   TEXT NOT NULL REFERENCES journal_entries(id),
    account_id TEXT NOT NULL REFERENCES ledger_accounts(id),
    amount     BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX postings_by_entry ON postings (entry_id);
CREATE INDEX postings_by_account ON postings (account_id);

-- What a principal sees in /ledger/transactions (a projection of the ledger plus pending items).
CREATE TABLE wallet_transactions (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    type        TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    task_id     TEXT,
    reference   TEXT,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX wallet_transactions_by_principal ON wallet_transactions (principal, created_at);

CREATE TABLE deposits (
    id           TEXT PRIMARY KEY,
    principal    TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    method       TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX deposits_by_status ON deposits (status, created_at);

CREATE TABLE withdrawal_addresses (
    id         TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    currency   TEXT NOT NULL,
    network    TEXT,
    address    TEXT NOT NULL,
    label      TEXT,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX withdrawal_addresses_by_principal ON withdrawal_addresses (principal);

CREATE TABLE withdrawals (
    id           TEXT PRIMARY KEY,
    principal    TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    address_id   TEXT NOT NULL REFERENCES withdrawal_addresses(id),
    status       TEXT NOT NULL,
    reason       TEXT,
    created_at   BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX withdrawals_by_status ON withdrawals (status, created_at);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    payment_status     TEXT NOT NULL,
    client_user_id     TEXT,
    client_agent_id    TEXT,
    provider_agent_id  TEXT NOT NULL,
    provider_agent_did TEXT NOT NULL,
    capability         TEXT NOT NULL,
    input              TEXT NOT NULL,
    output             TEXT,
    output_sha256      TEXT,
    error_reason       TEXT,
    price              BIGINT NOT NULL,
    fee_bps            BIGINT NOT NULL,
    fee                BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    progress_percent   BIGINT NOT NULL DEFAULT 0,
    progress_message   TEXT,
    deadline_at        BIGINT,
    review_until       BIGINT,
    payment_id         TEXT,
    payment_type       TEXT,
    payment_created_at BIGINT,
    rating             BIGINT,
    review             TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    claimed_at         BIGINT,
    completed_at       BIGINT,
    released_at        BIGINT,
    -- Hirings are tasks created through /agents/:did/hire; these columns carry their request.
    kind                   TEXT NOT NULL DEFAULT 'task',
    client_principal       TEXT NOT NULL,
    task_description       TEXT,
    delivery_mode          TEXT,
    repo_url               TEXT,
    client_idempotency_key TEXT,
    request_fingerprint    TEXT,
    trace_attempt          BIGINT NOT NULL DEFAULT 1,
    UNIQUE (client_principal, client_idempotency_key)
);
CREATE INDEX tasks_by_client_user ON tasks (client_user_id, created_at);
CREATE INDEX tasks_by_client_agent ON tasks (client_agent_id, created_at);
CREATE INDEX tasks_by_provider ON tasks (provider_agent_id, created_at);
CREATE INDEX tasks_by_review ON tasks (status, review_until);
CREATE INDEX tasks_by_deadline ON tasks (deadline_at);
CREATE INDEX tasks_by_kind_client ON tasks (kind, client_principal, created_at);

CREATE TABLE task_events (
    id               TEXT PRIMARY KEY,
    task_id          TEXT NOT NULL REFERENCES tasks(id),
    event_type       TEXT NOT NULL,
    progress_percent BIGINT,
    progress_message TEXT,
    details          TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX task_events_by_task ON task_events (task_id, created_at);

CREATE TABLE task_messages (
    id              TEXT PRIMARY KEY,
    task_id         TEXT NOT NULL REFERENCES tasks(id),
    content         TEXT NOT NULL,
    message_type    TEXT NOT NULL,
    sender_agent_id TEXT,
    sender_user_id  TEXT,
    sender_name     TEXT,
    -- Hiring conversations: `message`, `question` or `answer`; an answer resolves its question.
    kind            TEXT NOT NULL DEFAULT 'message',
    reply_to_id     TEXT,
    resolved_at     BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX task_messages_by_task ON task_messages (task_id, created_at);

-- At most one dispute per task.
CREATE TABLE disputes (
    id               TEXT PRIMARY KEY,
    task_id          TEXT NOT NULL UNIQUE REFERENCES tasks(id),
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    outcome          TEXT,
    client_share_bps BIGINT,
    note             TEXT,
    opened_at        BIGINT NOT NULL,
    resolved_at      BIGINT
);
CREATE INDEX disputes_by_status ON disputes (status, opened_at);

CREATE TABLE dispute_evidence (
    id          TEXT PRIMARY KEY,
    dispute_id  TEXT NOT NULL REFERENCES disputes(id),
    party       TEXT NOT NULL,
    author_id   TEXT NOT NULL,
    content     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX dispute_evidence_by_dispute ON dispute_evidence (dispute_id, created_at);

-- Saved responses for `Idempotency-Key`, per credential, kept 24 h.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL,
    status_code   BIGINT,
    response_body TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
