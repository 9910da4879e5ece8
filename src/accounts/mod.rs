//! People: accounts, passwords and user API keys.

pub mod api_keys;
pub mod browser_sessions;
pub mod github_tokens;
pub mod passwords;
pub mod routes;
pub mod users;
