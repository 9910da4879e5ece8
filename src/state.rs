//! What every handler can reach: the database, the configuration, the clock and outbound HTTP.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::http::rate_limit::LockoutPolicy;

/// A handle to the server's shared parts: one `Arc`, so the per-request clones that axum's
/// extractors and middleware make cost one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

pub struct Parts {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    /// Outbound HTTP (webhooks, probes): every name resolved once and checked against the outbound
    /// policy, no proxy, no redirects, short timeouts (`http::outbound::client`).
    pub http: reqwest::Client,
    /// Seals secrets the server must use again (webhook signing secrets).
    pub secrets: Arc<crate::secrets::SecretsKey>,
    /// The task engine: every change to a task or hiring goes through it.
    pub engine: crate::tasks::engine::Engine,
    /// Agent registrations (committed together on SQLite).
    pub registrar: crate::agents::Registrar,
    /// Credentials verified in the last moment (`auth::cache`).
    pub verified_keys: Arc<crate::auth::cache::VerifiedKeys>,
    /// Key use waiting to be written in the next batch.
    pub key_uses: Arc<crate::auth::cache::KeyUses>,
    /// This server's shares of the shared rate-limit counters.
    pub rate_leases: Arc<crate::http::rate_lease::RateLeases>,
    /// This server's open MCP streams (`mcp::hub`).
    pub mcp: Arc<crate::mcp::hub::Hub>,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        AppState(Arc::new(parts))
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Writes pending key use, so a page or list shows `last_used_at` as of now.
    pub async fn flush_key_uses(&self) -> sqlx::Result<()> {
        self.key_uses.flush(&self.db, self.now()).await
    }

    /// The smallest and largest withdrawal, and its payout fee.
    pub fn withdrawal_bounds(&self) -> crate::ledger::withdrawals::WithdrawalPolicy {
        crate::ledger::withdrawals::WithdrawalPolicy {
            minimum: self.config.min_withdrawal,
            maximum: self.config.max_amount,
            fee_bps: self.config.withdrawal_fee_bps,
        }
    }

    /// Failed authentications (API key exchange, dashboard log-in) before a lockout.
    pub fn lockout_policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            max_failures: self.config.auth_failures_per_minute.max(1),
            window_secs: 60,
            lockout_secs: self.config.auth_lockout_secs as i64,
        }
    }
}
