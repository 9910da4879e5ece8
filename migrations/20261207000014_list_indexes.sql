-- Every list pages by keyset newest first on (created_at, id) (src/http/keyset.rs). Each list's
-- index ends with both columns, so a page reads the index from the cursor on and stops after a
-- page, instead of reading and sorting all of the caller's rows. Replaced, not added: the
-- engine's writes keep the same number of indexes to maintain.
DROP INDEX tasks_by_client_user;
CREATE INDEX tasks_by_client_user ON tasks (client_user_id, created_at, id);
DROP INDEX tasks_by_client_agent;
CREATE INDEX tasks_by_client_agent ON tasks (client_agent_id, created_at, id);
DROP INDEX tasks_by_provider;
CREATE INDEX tasks_by_provider ON tasks (provider_agent_id, created_at, id);
DROP INDEX tasks_by_kind_client;
CREATE INDEX tasks_by_kind_client ON tasks (kind, client_principal, created_at, id);
DROP INDEX wallet_transactions_by_principal;
CREATE INDEX wallet_transactions_by_principal ON wallet_transactions (principal, created_at, id);
DROP INDEX user_api_keys_by_user;
CREATE INDEX user_api_keys_by_user ON user_api_keys (user_id, created_at, id);
DROP INDEX disputes_by_status;
CREATE INDEX disputes_by_status ON disputes (status, opened_at, id);
CREATE INDEX users_by_recent ON users (created_at, id);
