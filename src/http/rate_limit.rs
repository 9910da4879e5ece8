//! In-process rate limiting with time passed in, so tests drive it with a manual clock.
//! Fixed windows keyed by caller (credential or IP); the authenticate lockout on top.

use std::collections::HashMap;
use std::sync::Mutex;

/// What a limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the current window resets (≥ 1).
    pub reset_secs: u64,
}

pub struct WindowLimiter {
    limit: u32,
    window_ms: i64,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl WindowLimiter {
    pub fn new(limit: u32, window_secs: i64) -> Self {
        WindowLimiter { limit, window_ms: window_secs * 1000, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one request for `key` at `now_ms` and says whether it is within the limit.
    pub fn hit(&self, key: &str, now_ms: i64) -> Decision {
        self.hit_scaled(key, now_ms, 1, 1)
    }

    /// As `hit`, with the limit multiplied by `num / den` (reputation scaling; at least 1).
    pub fn hit_scaled(&self, key: &str, now_ms: i64, num: u32, den: u32) -> Decision {
        let limit = (self.limit.saturating_mul(num) / den.max(1)).max(1);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now_ms - *start < self.window_ms);
        }
        let entry = windows.entry(key.to_string()).or_insert((now_ms, 0));
        if now_ms - entry.0 >= self.window_ms {
            *entry = (now_ms, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        Decision {
            allowed,
            limit,
            remaining: limit - entry.1.min(limit),
            reset_secs: secs_until(entry.0 + self.window_ms, now_ms),
        }
    }
}

/// The API's rate-limit categories (API.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    General,
    Financial,
    Withdrawal,
}

/// Which category (besides `general`) a request falls in.
pub fn category_of(method: &axum::http::Method, path: &str) -> Option<Category> {
    if method != axum::http::Method::POST {
        return None;
    }
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    if path == "/ledger/withdraw" {
        return Some(Category::Withdrawal);
    }
    let financial = matches!(path, "/ledger/deposit" | "/payments/create-intent")
        || (path.starts_with("/tasks/") && path.ends_with("/payments"))
        || (path.starts_with("/agents/") && path.ends_with("/hire"));
    financial.then_some(Category::Financial)
}

/// Reputation ≥ 4.5 doubles an agent's limits, below 3.0 halves them: `(num, den)`.
pub fn reputation_scale(reputation_centi: Option<i64>) -> (u32, u32) {
    match reputation_centi {
        Some(r) if r >= 450 => (2, 1),
        Some(r) if r < 300 => (1, 2),
        _ => (1, 1),
    }
}

/// Failed attempts per key in a window; reaching the limit locks the key out for a while.
pub struct Lockout {
    max_failures: u32,
    window_ms: i64,
    lockout_ms: i64,
    state: Mutex<HashMap<String, LockState>>,
}

#[derive(Default)]
struct LockState {
    window_start: i64,
    failures: u32,
    locked_until: i64,
}

impl Lockout {
    pub fn new(max_failures: u32, window_secs: i64, lockout_secs: i64) -> Self {
        Lockout {
            max_failures,
            window_ms: window_secs * 1000,
            lockout_ms: lockout_secs * 1000,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after_secs)` while `key` is locked out.
    pub fn locked(&self, key: &str, now_ms: i64) -> Option<u64> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.get(key).filter(|s| s.locked_until > now_ms).map(|s| secs_until(s.locked_until, now_ms))
    }

    /// Records a failure; returns `Some(retry_after_secs)` if this failure started a lockout.
    pub fn fail(&self, key: &str, now_ms: i64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() > 100_000 {
            state.retain(|_, s| s.locked_until > now_ms || now_ms - s.window_start < self.window_ms);
        }
        let s = state.entry(key.to_string()).or_default();
        if now_ms - s.window_start >= self.window_ms {
            s.window_start = now_ms;
            s.failures = 0;
        }
        s.failures += 1;
        if s.failures >= self.max_failures {
            s.locked_until = now_ms + self.lockout_ms;
            s.failures = 0;
            s.window_start = now_ms;
            return Some(secs_until(s.locked_until, now_ms));
        }
        None
    }
}

fn secs_until(at_ms: i64, now_ms: i64) -> u64 {
    let ms = (at_ms - now_ms).max(0) as u64;
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_allows_the_limit_then_refuses_until_it_resets() {
        let limiter = WindowLimiter::new(3, 60);
        let t0 = 1_000_000;
        for i in 0..3 {
            let d = limiter.hit("ip", t0 + i);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i as u32);
        }
        let refused = limiter.hit("ip", t0 + 10);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_secs, 60);
        assert!(limiter.hit("other", t0 + 10).allowed, "keys are independent");
        assert!(limiter.hit("ip", t0 + 60_000).allowed, "a new window starts");
    }

    #[test]
    fn scaled_limits_and_categories() {
        let limiter = WindowLimiter::new(4, 60);
        assert_eq!(limiter.hit_scaled("a", 0, 2, 1).limit, 8);
        assert_eq!(limiter.hit_scaled("b", 0, 1, 2).limit, 2);
        assert_eq!(reputation_scale(Some(450)), (2, 1));
        assert_eq!(reputation_scale(Some(299)), (1, 2));
        assert_eq!(reputation_scale(None), (1, 1));
        let post = axum::http::Method::POST;
        assert_eq!(category_of(&post, "/ledger/withdraw"), Some(Category::Withdrawal));
        assert_eq!(category_of(&post, "/tasks/x/payments"), Some(Category::Financial));
        assert_eq!(category_of(&post, "/api/v1/ledger/deposit"), Some(Category::Financial));
        assert_eq!(category_of(&axum::http::Method::GET, "/ledger/balance"), None);
        assert_eq!(category_of(&post, "/tasks"), None);
    }

    #[test]
    fn lockout_starts_at_the_limit_and_ends_after_its_duration() {
        let lockout = Lockout::new(3, 60, 300);
        let t0 = 5_000_000;
        assert_eq!(lockout.fail("ip", t0), None);
        assert_eq!(lockout.fail("ip", t0 + 1), None);
        assert_eq!(lockout.locked("ip", t0 + 2), None);
        assert_eq!(lockout.fail("ip", t0 + 2), Some(300));
        assert_eq!(lockout.locked("ip", t0 + 1_000), Some(300));
        assert_eq!(lockout.locked("ip", t0 + 2 + 299_500), Some(1));
        assert_eq!(lockout.locked("ip", t0 + 2 + 300_000), None);
        assert_eq!(lockout.locked("other", t0), None);
    }

    #[test]
    fn failures_spread_over_windows_do_not_lock() {
        let lockout = Lockout::new(3, 60, 300);
        let t0 = 0;
        lockout.fail("ip", t0);
        lockout.fail("ip", t0 + 1);
        assert_eq!(lockout.fail("ip", t0 + 61_000), None);
        assert_eq!(lockout.locked("ip", t0 + 61_001), None);
    }
}

/// Middleware: every `/api` response carries `x-ratelimit-*` for the tightest category that
/// applies; over the limit → 429 `RATE_LIMIT_EXCEEDED` with `retry-after`. Counted per credential
/// (per IP when anonymous) and scaled by the acting agent's reputation.
pub async fn enforce(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = state.now();
    let caller = req.extensions().get::<crate::auth::Caller>();
    let subject = match caller {
        Some(c) => format!("key:{}", c.key_id()),
        None => format!(
            "ip:{}",
            super::extract::client_ip_of(req.headers(), req.extensions(), state.config.trust_forwarded_for)
        ),
    };
    let (num, den) = reputation_scale(caller.and_then(|c| c.agent.as_ref()).map(|a| a.reputation_centi));
    let limits = &state.limits;
    let mut decision = limits.general.hit_scaled(&subject, now, num, den);
    if decision.allowed {
        let specific = match category_of(req.method(), req.uri().path()) {
            Some(Category::Financial) => Some(&limits.financial),
            Some(Category::Withdrawal) => Some(&limits.withdrawal),
            _ => None,
        };
        if let Some(limiter) = specific {
            decision = limiter.hit_scaled(&subject, now, num, den);
        }
    }
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        crate::error::ApiError::rate_limited(decision.reset_secs).into_response()
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", decision.limit.into());
    headers.insert("x-ratelimit-remaining", decision.remaining.into());
    headers.insert("x-ratelimit-reset", decision.reset_secs.into());
    response
}
