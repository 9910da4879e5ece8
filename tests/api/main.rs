//! Black-box API tests: the real server on a random port, over SQLite and PostgreSQL.

mod support;

mod accounts;
mod agents;
mod api_keys;
mod assign;
mod conventions;
mod discovery;
mod operations;
mod secrets;
mod sessions;
