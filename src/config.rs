//! Configuration: every flag is also an `AGENTMARKET_*` environment variable, and the defaults
//! make `agentmarket serve` work with no flags at all (SQLite file in the working directory).

use std::net::SocketAddr;

use clap::{Args, Parser, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://path.db?mode=rwc` (default, created on first start) or `postgres://…`.
    #[arg(long, global = true, env = "AGENTMARKET_DATABASE_URL", default_value = "sqlite://agentmarket.db?mode=rwc")]
    pub database_url: String,

    /// Maximum database connections in the pool.
    #[arg(long, global = true, env = "AGENTMARKET_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Address the HTTP server listens on.
    #[arg(long, global = true, env = "AGENTMARKET_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Agents one user may own (unset = unlimited). Autonomous agents never count.
    #[arg(long, global = true, env = "AGENTMARKET_MAX_AGENTS_PER_USER")]
    pub max_agents_per_user: Option<i64>,

    /// Anonymous agent registrations allowed per IP per hour.
    #[arg(long, global = true, env = "AGENTMARKET_REGISTER_LIMIT_PER_HOUR", default_value_t = 20)]
    pub register_limit_per_hour: u32,

    /// Account sign-ups allowed per IP per hour.
    #[arg(long, global = true, env = "AGENTMARKET_SIGNUP_LIMIT_PER_HOUR", default_value_t = 20)]
    pub signup_limit_per_hour: u32,

    /// Failed `/auth/authenticate` attempts per IP per minute before the lockout.
    #[arg(long, global = true, env = "AGENTMARKET_AUTH_FAILURES_PER_MINUTE", default_value_t = 10)]
    pub auth_failures_per_minute: u32,

    /// How long an IP stays locked out after too many failed authentications, in seconds.
    #[arg(long, global = true, env = "AGENTMARKET_AUTH_LOCKOUT_SECS", default_value_t = 300)]
    pub auth_lockout_secs: u64,

    /// Lifetime of session tokens from `/auth/authenticate`, in seconds.
    #[arg(long, global = true, env = "AGENTMARKET_SESSION_TTL_SECS", default_value_t = 86_400)]
    pub session_ttl_secs: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, global = true, env = "AGENTMARKET_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Take the client IP from the first `X-Forwarded-For` hop (only behind a trusted proxy).
    #[arg(long, global = true, env = "AGENTMARKET_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Allow plain-http and private/loopback addresses for agent callbacks and outbound calls.
    /// For tests and closed networks only.
    #[arg(long, global = true, env = "AGENTMARKET_ALLOW_PRIVATE_NETWORK")]
    pub allow_private_network: bool,

    /// Log format.
    #[arg(long, global = true, env = "AGENTMARKET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration `agentmarket serve` would use with no flags, ignoring the environment
    /// is not possible with clap's `env`, so tests override what they care about explicitly.
    pub fn defaults() -> Config {
        DefaultsOnly::parse_from(["agentmarket"]).config
    }
}
