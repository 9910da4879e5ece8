-- Webhooks: subscriptions and a transactional outbox of deliveries. A delivery row is written in
-- the same transaction as the state change it reports; workers claim due rows with a lease.

CREATE TABLE webhook_subscriptions (
    id                   TEXT PRIMARY KEY,
    owner                TEXT NOT NULL,
    callback_url         TEXT NOT NULL,
    -- ",task.completed,task.failed," so one LIKE finds subscribers of an event on both engines.
    event_types          TEXT NOT NULL,
    -- The signing key. Unlike API keys it must be recoverable to sign; it is shown once.
    secret               TEXT NOT NULL,
    status               TEXT NOT NULL,
    failure_count        BIGINT NOT NULL DEFAULT 0,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_delivery_at     BIGINT,
    created_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX webhook_subscriptions_by_owner ON webhook_subscriptions (owner, status);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions(id),
    event           TEXT NOT NULL,
    task_id         TEXT,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
