//! Credentials: key format and hashing, session tokens, and the caller resolved from them.

pub mod cache;
pub mod caller;
pub mod keys;
pub mod routes;
pub mod scope;
pub mod sessions;

pub use caller::{Caller, MaybeCaller};
