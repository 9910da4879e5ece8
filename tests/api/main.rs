//! Black-box API tests: the real server on a random port, over SQLite and PostgreSQL.

mod support;

mod access;
mod accounts;
mod agents;
mod amount_bounds;
mod api_keys;
mod artifacts;
mod assign;
mod concurrency;
mod connections;
mod conventions;
mod dashboard;
mod discovery;
mod discovery_scale;
mod disputes;
mod engine;
mod hirings;
mod idempotency;
mod ledger;
mod lists;
mod model;
mod operations;
mod payments;
mod rate_limits;
mod registrations;
mod review_window;
mod search;
mod secrets;
mod sessions;
mod storage;
mod stream;
mod tasks;
mod text_input;
mod webhooks;
