//! What every handler can reach: the database, the configuration, the clock and the limiters.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::http::rate_limit::{Lockout, WindowLimiter};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub limits: Arc<Limits>,
    /// Outbound HTTP (webhooks, probes): every name resolved once and checked against the outbound
    /// policy, no proxy, no redirects, short timeouts (`http::outbound::client`).
    pub http: reqwest::Client,
}

pub struct Limits {
    /// Anonymous `/agents/register`, per IP.
    pub anonymous_register: WindowLimiter,
    /// `/accounts/register`, per IP.
    pub signup: WindowLimiter,
    /// Failed `/auth/authenticate`, per IP.
    pub authenticate: Lockout,
    /// API.md §8 categories, per credential (per IP when anonymous).
    pub general: WindowLimiter,
    pub financial: WindowLimiter,
    pub withdrawal: WindowLimiter,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            anonymous_register: WindowLimiter::new(config.register_limit_per_hour, 3600),
            signup: WindowLimiter::new(config.signup_limit_per_hour, 3600),
            authenticate: Lockout::new(config.auth_failures_per_minute, 60, config.auth_lockout_secs as i64),
            general: WindowLimiter::new(config.rate_general_per_minute, 60),
            financial: WindowLimiter::new(config.rate_financial_per_minute, 60),
            withdrawal: WindowLimiter::new(config.rate_withdrawals_per_hour, 3600),
        }
    }
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
