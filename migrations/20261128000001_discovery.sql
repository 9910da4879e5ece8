-- Discovery at scale (issue 10). Portable SQL; the engine-specific full-text index (SQLite FTS5,
-- PostgreSQL tsvector + GIN) is created by `agents::search::ensure` after the migrations.
--
-- agent_capabilities becomes the listing of ACTIVE agents by capability, carrying a copy of the
-- sort keys (price, reputation, completed tasks, creation time) so a capability filter and any
-- sort are answered from one index range. It is rewritten with every agent change, in the same
-- transaction (agents::store::sync_listing).
DELETE FROM agent_capabilities WHERE agent_id IN (SELECT id FROM agents WHERE status <> 'active');
ALTER TABLE agent_capabilities ADD COLUMN base_price BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_capabilities ADD COLUMN reputation_centi BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_capabilities ADD COLUMN tasks_completed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_capabilities ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_capabilities ADD COLUMN has_callback BIGINT NOT NULL DEFAULT 0;
-- Never seen: 0 (not NULL), so both engines order it the same way.
ALTER TABLE agent_capabilities ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE agent_capabilities SET
    base_price = (SELECT a.base_price FROM agents a WHERE a.id = agent_capabilities.agent_id),
    reputation_centi = (SELECT a.reputation_centi FROM agents a WHERE a.id = agent_capabilities.agent_id),
    tasks_completed = (SELECT a.tasks_completed FROM agents a WHERE a.id = agent_capabilities.agent_id),
    created_at = (SELECT a.created_at FROM agents a WHERE a.id = agent_capabilities.agent_id),
    has_callback = (SELECT a.has_callback FROM agents a WHERE a.id = agent_capabilities.agent_id),
    last_seen_at = (SELECT COALESCE(a.last_seen_at, 0) FROM agents a WHERE a.id = agent_capabilities.agent_id);

-- One index per discovery sort, each led by the capability (the equality filter). The price
-- index also serves min_price/max_price ranges; the reputation index min_reputation.
DROP INDEX agent_capabilities_by_name;
CREATE INDEX listing_by_reputation ON agent_capabilities (capability, reputation_centi, tasks_completed, created_at, agent_id);
CREATE INDEX listing_by_price ON agent_capabilities (capability, base_price, reputation_centi DESC, agent_id);
CREATE INDEX listing_by_recent ON agent_capabilities (capability, created_at, agent_id);
CREATE INDEX listing_by_availability ON agent_capabilities (capability, has_callback, last_seen_at, reputation_centi, agent_id);

-- The same sorts without a capability, led by the status (only 'active' is listed).
DROP INDEX agents_by_status;
CREATE INDEX agents_by_recent ON agents (status, created_at, id);
CREATE INDEX agents_by_reputation ON agents (status, reputation_centi, tasks_completed, created_at, id);
CREATE INDEX agents_by_price ON agents (status, base_price, reputation_centi DESC, id);
CREATE INDEX agents_by_availability ON agents (status, has_callback, (COALESCE(last_seen_at, 0)), reputation_centi, id);

-- /capabilities and the marketplace's total_count come from counters maintained with each
-- agent change (same transaction), spread over shards so concurrent registrations offering the
-- same capability do not all queue on one row. Price sums are kept as two parts (units / 10^8
-- and units % 10^8, like db::exact_sum) so they never overflow.
CREATE TABLE capability_summary (
    capability     TEXT NOT NULL,
    shard          BIGINT NOT NULL,
    agent_count    BIGINT NOT NULL,
    price_sum_high BIGINT NOT NULL,
    price_sum_low  BIGINT NOT NULL,
    PRIMARY KEY (capability, shard)
);
INSERT INTO capability_summary (capability, shard, agent_count, price_sum_high, price_sum_low)
    SELECT capability, 0, COUNT(*), COALESCE(SUM(base_price / 100000000), 0), COALESCE(SUM(base_price % 100000000), 0)
    FROM agent_capabilities GROUP BY capability;

CREATE TABLE active_agent_count (
    shard  BIGINT PRIMARY KEY,
    agents BIGINT NOT NULL
);
INSERT INTO active_agent_count (shard, agents) SELECT 0, COUNT(*) FROM agents WHERE status = 'active';

-- The disputes list pages newest first in SQL (it used to load every dispute and page in memory).
CREATE INDEX disputes_by_opened ON disputes (opened_at, id);

-- The ledger audit runs on demand (admin endpoint, CLI, the admin page's button); the admin page
-- shows the last stored result and its time instead of auditing the whole ledger on every view.
CREATE TABLE ledger_audits (
    id          TEXT PRIMARY KEY,
    ran_at      BIGINT NOT NULL,
    ok          BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    report      TEXT NOT NULL
);
CREATE INDEX ledger_audits_by_time ON ledger_audits (ran_at, id);

-- A user's agents, newest first (the dashboard's agents page pages in SQL); it replaces the index
-- on owner_id alone, its prefix (one index fewer to maintain per registration).
CREATE INDEX agents_by_owner_recent ON agents (owner_id, created_at, id);
DROP INDEX agents_by_owner;
