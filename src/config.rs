//! Configuration: every flag is also an `AGENTMARKET_*` environment variable, and the defaults
//! make `agentmarket serve` work with no flags at all (SQLite file in the working directory).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://path.db?mode=rwc` (default, created on first start) or `postgres://…`.
    #[arg(long, global = true, env = "AGENTMARKET_DATABASE_URL", default_value = "sqlite://agentmarket.db?mode=rwc")]
    pub database_url: String,

    /// Maximum database connections in the pool (on SQLite, reads get at most twice the
    /// cores, and at least 4, plus the one writer).
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

    /// Requests per credential (or IP) per minute, all endpoints.
    #[arg(long, global = true, env = "AGENTMARKET_RATE_GENERAL_PER_MINUTE", default_value_t = 100)]
    pub rate_general_per_minute: u32,

    /// Money-moving requests (deposits, payment intents, task payments, hires) per minute.
    #[arg(long, global = true, env = "AGENTMARKET_RATE_FINANCIAL_PER_MINUTE", default_value_t = 20)]
    pub rate_financial_per_minute: u32,

    /// Withdrawals per hour.
    #[arg(long, global = true, env = "AGENTMARKET_RATE_WITHDRAWALS_PER_HOUR", default_value_t = 10)]
    pub rate_withdrawals_per_hour: u32,

    /// Lifetime of session tokens from `/auth/authenticate`, in seconds.
    #[arg(long, global = true, env = "AGENTMARKET_SESSION_TTL_SECS", default_value_t = 86_400)]
    pub session_ttl_secs: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, global = true, env = "AGENTMARKET_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Longest time a client may take to send a request's head (request line and headers),
    /// counted from the connection's accept or from the first byte after a response: `10s`,
    /// `500ms`, `0` (off). A connection still sending its head then is closed.
    #[arg(long, global = true, env = "AGENTMARKET_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a keep-alive connection may sit idle between requests before it is closed
    /// (`60s`, `0` = no limit).
    #[arg(long, global = true, env = "AGENTMARKET_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Longest time for one request, reading its body included; then `408 REQUEST_TIMEOUT`
    /// (`30s`, `0` = no limit).
    #[arg(long, global = true, env = "AGENTMARKET_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Most client connections open at once. Unset: 10,000, or the open-file limit minus 256
    /// when that is lower. At the cap, connections idle in keep-alive are closed to make room;
    /// if none is idle, new connections wait in the listen backlog.
    #[arg(long, global = true, env = "AGENTMARKET_MAX_CONNECTIONS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,

    /// Take the client IP from the first `X-Forwarded-For` hop (only behind a trusted proxy).
    #[arg(long, global = true, env = "AGENTMARKET_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Allow plain http, any port, and private, loopback and other non-global addresses for agent
    /// callbacks and every outbound call. For tests and closed networks only.
    #[arg(long, global = true, env = "AGENTMARKET_ALLOW_PRIVATE_NETWORK")]
    pub allow_private_network: bool,

    /// Credit `sandbox` deposits at once (development and tests only: it creates money).
    #[arg(long, global = true, env = "AGENTMARKET_ENABLE_SANDBOX_DEPOSITS")]
    pub enable_sandbox_deposits: bool,

    /// This server's public base URL (`https://market.example.com`): payment providers call back
    /// to `<public-url>/webhooks/…` and send payers back to `<public-url>/dashboard/wallet`.
    #[arg(long, global = true, env = "AGENTMARKET_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,

    /// NOWPayments API key: enables `crypto`/`nowpayments` deposits (with `--nowpayments-ipn-secret`).
    #[arg(long, global = true, env = "AGENTMARKET_NOWPAYMENTS_API_KEY", hide_env_values = true)]
    pub nowpayments_api_key: Option<Redacted>,

    /// NOWPayments IPN secret: verifies `POST /webhooks/nowpayments`.
    #[arg(long, global = true, env = "AGENTMARKET_NOWPAYMENTS_IPN_SECRET", hide_env_values = true)]
    pub nowpayments_ipn_secret: Option<Redacted>,

    /// NOWPayments API base URL (the sandbox's, or a fake one in tests).
    #[arg(
        long,
        global = true,
        env = "AGENTMARKET_NOWPAYMENTS_API_URL",
        default_value = "https://api.nowpayments.io/v1"
    )]
    pub nowpayments_api_url: String,

    /// Stripe secret key (`sk_…`): enables `card`/`stripe` deposits (with `--stripe-webhook-secret`).
    #[arg(long, global = true, env = "AGENTMARKET_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<Redacted>,

    /// Stripe webhook endpoint secret (`whsec_…`): verifies `POST /webhooks/stripe`.
    #[arg(long, global = true, env = "AGENTMARKET_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<Redacted>,

    /// Stripe API base URL (a fake one in tests).
    #[arg(long, global = true, env = "AGENTMARKET_STRIPE_API_URL", default_value = "https://api.stripe.com/v1")]
    pub stripe_api_url: String,

    /// Platform fee in basis points (500 = 5 %), fixed on each task when it is created.
    #[arg(long, global = true, env = "AGENTMARKET_FEE_BPS", default_value_t = 500, value_parser = clap::value_parser!(i64).range(0..=10_000))]
    pub fee_bps: i64,

    /// Payout fee on each withdrawal in basis points (100 = 1 %, as Agrenting's crypto payouts),
    /// fixed when it is requested and booked to the platform when it completes.
    #[arg(long, global = true, env = "AGENTMARKET_WITHDRAWAL_FEE_BPS", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=10_000))]
    pub withdrawal_fee_bps: i64,

    /// How long a client may review a completed task before it is released automatically:
    /// `24h`, `90m`, `30s`, `0` (release at completion).
    #[arg(long, global = true, env = "AGENTMARKET_REVIEW_WINDOW", default_value = "24h", value_parser = parse_duration_secs)]
    pub review_window: u64,

    /// Largest amount any one request may name (a deposit, withdrawal, credit, price or cap), in
    /// USD; at most 10000000000.00.
    #[arg(long, global = true, env = "AGENTMARKET_MAX_AMOUNT", default_value = "1000000000.00", value_parser = parse_amount)]
    pub max_amount: crate::money::Amount,

    /// Smallest withdrawal, in USD.
    #[arg(long, global = true, env = "AGENTMARKET_MIN_WITHDRAWAL", default_value = "1.00", value_parser = parse_amount)]
    pub min_withdrawal: crate::money::Amount,

    /// How often the background sweeper releases reviewed tasks and expires overdue ones, in
    /// seconds (0 disables it; tests run it by hand with an injected clock).
    #[arg(long, global = true, env = "AGENTMARKET_SWEEP_INTERVAL_SECS", default_value_t = 5)]
    pub sweep_interval_secs: u64,

    /// Attempts per webhook delivery before it is given up.
    #[arg(long, global = true, env = "AGENTMARKET_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,

    /// Consecutive failed deliveries after which a subscription is disabled.
    #[arg(long, global = true, env = "AGENTMARKET_WEBHOOK_DISABLE_AFTER", default_value_t = 20)]
    pub webhook_disable_after: u32,

    /// How often the webhook worker looks for due deliveries, in milliseconds (0 disables it).
    #[arg(long, global = true, env = "AGENTMARKET_WEBHOOK_INTERVAL_MS", default_value_t = 1000)]
    pub webhook_interval_ms: u64,

    /// How long a verified API key or session token is trusted without asking the database, in
    /// milliseconds (0: ask on every request). A key revoked on another server stops working
    /// here within this time; on this server at once.
    #[arg(long, global = true, env = "AGENTMARKET_KEY_CACHE_TTL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=2000))]
    pub key_cache_ttl_ms: u64,

    /// Task-engine batches in flight at once on PostgreSQL (SQLite always has one: one writer).
    /// More overlap one batch's round trips with another's; fewer make bigger batches.
    #[arg(long, global = true, env = "AGENTMARKET_ENGINE_COMMITTERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub engine_committers: u64,

    /// Do not probe a hired agent's availability in the background (tests run the probe by hand).
    #[arg(long, global = true, env = "AGENTMARKET_DEFER_HIRING_PROBE")]
    pub defer_hiring_probe: bool,

    /// The key that seals secrets the server must use again (webhook signing secrets), as base64
    /// of 32 bytes. Every server of a deployment needs the same one. Unset: the key file.
    #[arg(long, global = true, env = "AGENTMARKET_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<Redacted>,

    /// Where the secrets key is kept when `--secrets-key` is not given; created (mode 0600) on
    /// first start.
    #[arg(long, global = true, env = "AGENTMARKET_SECRETS_KEY_FILE", default_value = "agentmarket.key")]
    pub secrets_key_file: std::path::PathBuf,

    /// Log format.
    #[arg(long, global = true, env = "AGENTMARKET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

/// A configuration value that is a secret: `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `24h`, `90m`, `30s`, `2d` or plain seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a duration such as 24h, 90m or 30s"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(scale).ok_or_else(|| "duration too long".to_string())
}

/// `500ms`, `10s`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a duration such as 10s or 500ms"))?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{s}`: the unit must be ms, s, m or h")),
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis).ok_or_else(|| "duration too long".to_string())
}

fn parse_amount(s: &str) -> Result<crate::money::Amount, String> {
    crate::money::Amount::parse(s).map_err(|e| format!("amount {e}"))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_duration, parse_duration_secs};

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("24h"), Ok(86_400));
        assert_eq!(parse_duration_secs("90m"), Ok(5_400));
        assert_eq!(parse_duration_secs("0"), Ok(0));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert!(parse_duration_secs("1w").is_err());
        assert!(parse_duration_secs("h").is_err());
    }

    #[test]
    fn durations_in_milliseconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1.5s").is_err());
    }
}
