//! Rate limits kept in the database, so every server of a deployment counts against one limit
//! and a restart clears nothing (API.md §8). Time is passed in, so tests drive it with a manual
//! clock. A counter is a fixed window that starts at its first hit; one statement counts a
//! request against all its buckets at once.

use axum::Extension;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::endpoint::Declared;
use super::extract::client_ip_of;
use crate::auth::Caller;
use crate::db::{Arg, Db, SqlBuilder};
use crate::error::ApiError;
use crate::state::AppState;

/// The rate-limit category an endpoint declares in the route table. Every request also counts
/// against `general`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    General,
    /// Money-moving requests: deposits, payment intents, task payments, hires.
    Financial,
    Withdrawal,
    /// Account sign-ups, per client IP.
    Signup,
    /// Agent registrations without a credential, per client IP.
    AnonymousRegister,
}

/// One counter to bump: its bucket name, its limit and its window.
#[derive(Debug, Clone)]
pub struct Rule {
    pub bucket: String,
    pub limit: u32,
    pub window_ms: i64,
}

impl Rule {
    pub fn new(bucket: String, limit: u32, window_secs: i64) -> Rule {
        Rule { bucket, limit: limit.max(1), window_ms: window_secs * 1000 }
    }
}

/// What the counters say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the reported window resets (≥ 1).
    pub reset_secs: u64,
}

/// Counts one hit on every rule's bucket in the database and returns the tightest answer: a
/// refusing bucket if any (the one that frees last), else the one with the fewest requests
/// left. Exact; requests go through `RateLeases::hit`, which calls the database less often.
pub async fn hit(db: &Db, rules: &[Rule], now: i64) -> sqlx::Result<Decision> {
    let mut q = SqlBuilder::new("INSERT INTO rate_limit_counters (bucket, window_start, window_ms, hits) VALUES ");
    for (i, rule) in rules.iter().enumerate() {
        let row = [Arg::Text(rule.bucket.clone()), Arg::Int(now), Arg::Int(rule.window_ms)];
        q.push(if i == 0 { "(?, ?, ?, 1)" } else { ", (?, ?, ?, 1)" }, row);
    }
    // An expired window restarts at this hit; SET expressions all read the row as it was.
    q.push(
        " ON CONFLICT (bucket) DO UPDATE SET \
         hits = CASE WHEN rate_limit_counters.window_start + rate_limit_counters.window_ms <= excluded.window_start \
                THEN 1 ELSE rate_limit_counters.hits + 1 END, \
         window_start = CASE WHEN rate_limit_counters.window_start + rate_limit_counters.window_ms <= excluded.window_start \
                THEN excluded.window_start ELSE rate_limit_counters.window_start END, \
         window_ms = excluded.window_ms \
         RETURNING bucket, window_start, hits",
        [],
    );
    let rows: Vec<(String, i64, i64)> = q.query_as().fetch_all(db.writer()).await?;
    let decisions = rows.into_iter().filter_map(|(bucket, window_start, hits)| {
        let rule = rules.iter().find(|r| r.bucket == bucket)?;
        let used = hits.clamp(0, i64::from(u32::MAX)) as u32;
        Some(Decision {
            allowed: used <= rule.limit,
            limit: rule.limit,
            remaining: rule.limit - used.min(rule.limit),
            reset_secs: secs_until(window_start + rule.window_ms, now),
        })
    });
    Ok(super::rate_lease::tightest(decisions.collect()))
}

/// `Some(retry_after_secs)` while any of `subjects` is locked out.
pub async fn locked_out(db: &Db, subjects: &[String], now: i64) -> sqlx::Result<Option<u64>> {
    if subjects.is_empty() {
        return Ok(None);
    }
    let mut q = SqlBuilder::new("SELECT locked_until FROM rate_limit_lockouts");
    q.push(" WHERE locked_until > ?", [Arg::Int(now)]);
    let marks = vec!["?"; subjects.len()].join(", ");
    q.push(&format!(" AND subject IN ({marks})"), subjects.iter().cloned().map(Arg::Text));
    let rows: Vec<(i64,)> = q.query_as().fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(|(until,)| until).max().map(|until| secs_until(until, now)))
}

/// A failure policy: this many failures within the window lock the subject out for a while.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window_secs: i64,
    pub lockout_secs: i64,
}

/// Records a failure of `subject`; `Some(retry_after_secs)` when it starts a lockout.
pub async fn record_failure(db: &Db, subject: &str, policy: LockoutPolicy, now: i64) -> sqlx::Result<Option<u64>> {
    let rule = Rule::new(format!("failures:{subject}"), policy.max_failures, policy.window_secs);
    let counted = hit(db, std::slice::from_ref(&rule), now).await?;
    if counted.remaining > 0 {
        return Ok(None);
    }
    let until = now + policy.lockout_secs * 1000;
    sqlx::query(
        "INSERT INTO rate_limit_lockouts (subject, locked_until) VALUES ($1, $2) \
         ON CONFLICT (subject) DO UPDATE SET locked_until = excluded.locked_until",
    )
    .bind(subject)
    .bind(until)
    .execute(db.writer())
    .await?;
    // The failures that caused the lockout are spent: after it, the count starts afresh.
    sqlx::query("DELETE FROM rate_limit_counters WHERE bucket = $1").bind(&rule.bucket).execute(db.writer()).await?;
    Ok(Some(secs_until(until, now)))
}

/// Deletes windows and lockouts that ended before `now` (the sweeper calls this).
pub async fn purge_expired(db: &Db, now: i64) -> sqlx::Result<u64> {
    let counters = sqlx::query("DELETE FROM rate_limit_counters WHERE window_start + window_ms <= $1")
        .bind(now)
        .execute(db.writer())
        .await?;
    let lockouts =
        sqlx::query("DELETE FROM rate_limit_lockouts WHERE locked_until <= $1").bind(now).execute(db.writer()).await?;
    Ok(counters.rows_affected() + lockouts.rows_affected())
}

/// Reputation ≥ 4.5 doubles an agent's limits, below 3.0 halves them: `(num, den)`.
pub fn reputation_scale(reputation_centi: Option<i64>) -> (u32, u32) {
    match reputation_centi {
        Some(r) if r >= 450 => (2, 1),
        Some(r) if r < 300 => (1, 2),
        _ => (1, 1),
    }
}

pub(crate) fn secs_until(at_ms: i64, now_ms: i64) -> u64 {
    let ms = (at_ms - now_ms).max(0) as u64;
    ms.div_ceil(1000).max(1)
}

/// The buckets one request counts against, from its declared category: per credential (per
/// client IP when anonymous), scaled by the acting agent's reputation; sign-ups and anonymous
/// registrations per IP.
pub fn rules_for(state: &AppState, limit: Limit, caller: Option<&Caller>, ip: &str) -> Vec<Rule> {
    let config = &state.config;
    let subject = match caller {
        Some(c) => format!("key:{}", c.key_id()),
        None => format!("ip:{ip}"),
    };
    let (num, den) = reputation_scale(caller.and_then(|c| c.agent.as_ref()).map(|a| a.reputation_centi));
    let scaled = |n: u32| n.saturating_mul(num) / den.max(1);
    let mut rules = vec![Rule::new(format!("general:{subject}"), scaled(config.rate_general_per_minute), 60)];
    match limit {
        Limit::General => {}
        Limit::Financial => {
            rules.push(Rule::new(format!("financial:{subject}"), scaled(config.rate_financial_per_minute), 60))
        }
        Limit::Withdrawal => {
            rules.push(Rule::new(format!("withdrawal:{subject}"), scaled(config.rate_withdrawals_per_hour), 3600))
        }
        Limit::Signup => rules.push(signup_rule(state, ip)),
        Limit::AnonymousRegister if caller.is_none() => {
            rules.push(Rule::new(format!("register:ip:{ip}"), config.register_limit_per_hour, 3600))
        }
        Limit::AnonymousRegister => {}
    }
    rules
}

/// Sign-ups per client IP, shared by the API and the dashboard's sign-up form.
pub fn signup_rule(state: &AppState, ip: &str) -> Rule {
    Rule::new(format!("signup:ip:{ip}"), state.config.signup_limit_per_hour, 3600)
}

/// Guard middleware: counts the request against its declared buckets (through this server's
/// leases, `http::rate_lease`); over a limit → 429
/// `RATE_LIMIT_EXCEEDED` with `retry-after`. Every answer carries `x-ratelimit-*` for the
/// tightest bucket. If the counters cannot be reached the request is let through (and logged):
/// the handler will meet the same database.
pub async fn enforce(
    State(state): State<AppState>,
    Extension(declared): Extension<Declared>,
    req: Request,
    next: Next,
) -> Response {
    let now = state.now();
    let ip = client_ip_of(req.headers(), req.extensions(), state.config.trust_forwarded_for).to_string();
    let rules = rules_for(&state, declared.limit, req.extensions().get::<Caller>(), &ip);
    let decision = match state.rate_leases.hit(&state.db, &rules, now).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "rate-limit counters unavailable; request let through");
            None
        }
    };
    let mut response = match decision {
        Some(d) if !d.allowed => ApiError::rate_limited(d.reset_secs).into_response(),
        _ => next.run(req).await,
    };
    if let Some(d) = decision {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", d.limit.into());
        headers.insert("x-ratelimit-remaining", d.remaining.into());
        headers.insert("x-ratelimit-reset", d.reset_secs.into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reputation_scales() {
        assert_eq!(reputation_scale(Some(450)), (2, 1));
        assert_eq!(reputation_scale(Some(299)), (1, 2));
        assert_eq!(reputation_scale(None), (1, 1));
        assert_eq!(secs_until(1_500, 1_000), 1);
        assert_eq!(secs_until(61_000, 1_000), 60);
    }
}
